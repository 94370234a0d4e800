"""Shared fixtures: a temporary MLflow store for every test, and a tiny trained model.

The tiny task is learnable in seconds: the target is the source written backwards, over a small
alphabet. Held-out sources are words the model never saw, so translating them right means the
model learned the task, not the examples.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from charmt.data import Pair

PROJECT = Path(__file__).resolve().parents[1]


def reversal_pairs(count: int, seed: int, alphabet: str = "abcdefgh") -> list[Pair]:
    """``count`` distinct words of 2-7 letters, each paired with itself reversed."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7))))
    return [Pair(word, word[::-1]) for word in sorted(words)]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this interpreter's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test logs to its own SQLite store, never to the project's mlflow.db."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return uri


@dataclass
class Trained:
    translator: object  # charmt.translator.Translator; TensorFlow is imported lazily
    result: object  # charmt.training.TrainResult
    model_dir: Path
    train: list[Pair]
    held_out: list[Pair]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small model trained on the reversal task, saved as a models/ directory."""
    from charmt.training import TrainParams, train_model
    from charmt.translator import Translator
    from charmt.vocab import Vocabularies

    pairs = reversal_pairs(900, seed=1)
    random.Random(2).shuffle(pairs)
    held_out, validation, train = pairs[:60], pairs[60:160], pairs[160:]
    vocabularies = Vocabularies.from_pairs(train)
    params = TrainParams(latent_dim=64, batch_size=32, epochs=25, learning_rate=0.005, seed=3)
    result = train_model(train, validation, vocabularies, params, verbose=0)
    translator = Translator.from_training(result.model, vocabularies, train)
    model_dir = tmp_path_factory.mktemp("trained") / "models"
    translator.save(model_dir)
    return Trained(translator, result, model_dir, train, held_out)
