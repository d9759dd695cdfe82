"""The labelled French evaluation set of semantic matching (issue 15): data + metrics.

`occupations.json` is hand-written (one offer per occupation, and how candidates describe
themselves); `build.py` expands it with a fixed seed into `dataset.json` (jobs, profiles,
graded relevance), which is what tests and the benchmark read. `metrics.py`: NDCG@k and
recall@k. `python -m matching.eval build` rewrites dataset.json.
"""
