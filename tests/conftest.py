"""Shared test set-up: offline hub, one torch thread, tiny Kandinsky/depth models on demand.

The environment is set before anything imports huggingface_hub, diffusers or torch, which
read these variables once at import.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# No test may reach the network: a hub id must fail fast as "not cached".
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# The cores are shared: torch's default of one thread per core, competing with other
# processes, made a 64×64 tiny-model pass 45× slower here (6 s instead of 0.13 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).parent))  # for `import tiny_models`

MODEL_ENV = ("KANDANIM_PRIOR", "KANDANIM_DECODER", "KANDANIM_INPAINT", "KANDANIM_DEPTH")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory):  # -> tiny_models.TinyFolders
    """Tiny seeded models with the real architectures, saved once per session."""
    from tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def tiny_model_env(tiny_models, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """KANDANIM_PRIOR/_DECODER/_INPAINT/_DEPTH point at the tiny models for this test (the
    tiny DPT serves both model depth backends: the architecture is read from its config)."""
    monkeypatch.setenv("KANDANIM_PRIOR", str(tiny_models.prior))
    monkeypatch.setenv("KANDANIM_DECODER", str(tiny_models.decoder))
    monkeypatch.setenv("KANDANIM_INPAINT", str(tiny_models.inpaint))
    monkeypatch.setenv("KANDANIM_DEPTH", str(tiny_models.midas))
    yield tiny_models


@pytest.fixture
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KANDANIM_* model variables: the spec defaults apply."""
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
