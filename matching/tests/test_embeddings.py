"""The embedding model: offline, deterministic, French-aware; the texts it is given."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from emploiplus.testing import BASE_DIR
from matching import embeddings

OFFLINE_PROBE = """
import socket, sys
# Proof the sandbox has no network: even a raw connect to a public address fails at once.
probe = socket.socket(); probe.settimeout(2)
assert probe.connect_ex(("1.1.1.1", 443)) != 0, "this namespace has network"
from matching import embeddings
vectors = embeddings.encode(["Infirmière diplômée d'État", "Intégrateur React"])
assert vectors.shape == (2, 512), vectors.shape
print("offline ok", embeddings.MODEL_ID, float(vectors[0] @ vectors[1]))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) to drop the network")
def test_it_loads_and_embeds_with_no_network_at_all():
    # A new network namespace has no interface up: no DNS, no route, no proxy — the model
    # must come entirely from the installed package.
    result = subprocess.run(
        ["unshare", "--net", "--map-root-user", sys.executable, "-c", OFFLINE_PROBE],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "offline ok use-multilingual-v3@" in result.stdout


def test_it_embeds_the_same_text_to_the_same_vector():
    text = "Développeuse front-end : interfaces web accessibles en React et TypeScript."
    first = embeddings.encode([text])[0]
    again = embeddings.encode([text])[0]
    assert first.dtype == np.float32 and first.shape == (512,)
    assert np.array_equal(first, again)
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    # A freshly loaded model (another process, after a restart) gives the same bits.
    loaded, embeddings._model = embeddings._model, None
    try:
        assert np.array_equal(embeddings.encode([text])[0], first)
    finally:
        embeddings._model = loaded


def test_it_puts_french_synonyms_closer_than_other_trades():
    titles = [
        "Infirmière diplômée d'État en service de chirurgie",
        "Infirmier en soins généraux à l'hôpital",
        "Analyste de données : tableaux de bord et requêtes SQL",
        "Data analyst, reporting des ventes",
        "Chauffeur poids lourd, livraisons régionales",
    ]
    v = embeddings.encode(titles)
    similarity = v @ v.T
    assert similarity[0, 1] > max(similarity[0, 2], similarity[0, 3], similarity[0, 4])
    assert similarity[2, 3] > max(similarity[2, 0], similarity[2, 1], similarity[2, 4])


def test_it_composes_the_embedded_texts():
    job = embeddings.job_text(title=" Développeur  front-end ", description="Interfaces web", required_skills=["react"])
    assert job == "Développeur front-end. Interfaces web. Compétences : react."
    profile = embeddings.candidate_text(
        headline="Intégrateur React", job_title="intégrateur react", summary="", skills=[]
    )
    assert profile == "Intégrateur React."  # the job title repeating the headline is not doubled
    assert embeddings.source_hash(job) == embeddings.source_hash(job)
    assert embeddings.source_hash(job) != embeddings.source_hash(job + " ")
    long = embeddings.candidate_text(headline="x", job_title="", summary="mot " * 5000, skills=None)
    assert len(long) < embeddings.MAX_TEXT_CHARS + 10


def test_it_calibrates_cosine_to_a_0_100_score():
    low, high = embeddings.CALIBRATION
    assert embeddings.cosine_to_score(low - 0.1) == 0.0
    assert embeddings.cosine_to_score(high + 0.1) == 100.0
    assert embeddings.cosine_to_score((low + high) / 2) == 50.0
