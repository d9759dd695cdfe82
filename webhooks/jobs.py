"""RQ jobs of webhooks (thin): process one stored event; queue lost ones again."""

from __future__ import annotations

from typing import Any

from webhooks import services


def process_event(event_id: str) -> dict[str, Any]:
    return services.webhook_process(event_id=event_id)


def sweep_events() -> list[str]:
    """Scheduled (emploiplus/cron.py): events whose processing job was lost."""
    return services.webhook_sweep()
