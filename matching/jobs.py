"""RQ jobs of matching (thin: load, call one service)."""

from __future__ import annotations

from matching import services


def refresh_materialized_views() -> dict[str, float]:
    return services.stats_refresh()
