"""Ranking metrics of the evaluation (graded relevance 0–3)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def dcg(gains: Sequence[float]) -> float:
    return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """NDCG@k with exponential gain (2^rel − 1); 0 when nothing is relevant."""
    ideal = dcg(sorted(relevance.values(), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([relevance.get(item, 0) for item in ranked[:k]]) / ideal


def recall_at(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 20, *, min_grade: int = 2) -> float:
    """Share of the items graded ≥ min_grade (same or close occupation) found in the top k."""
    wanted = {item for item, g in relevance.items() if g >= min_grade}
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)
