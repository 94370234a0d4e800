"""Running the project's commands from a test as a user would: the environment child processes
get, a command's output (failing the test with its tail when it fails), and a fresh Python that
answers in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this interpreter's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def python_json(code: str, *args: str, store: str, timeout: float = 300, **extra_env: str) -> Any:
    """Run ``code`` in a fresh Python (``-c``, with ``args``) logging to the MLflow store
    ``store``; the JSON on the last line of its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=subprocess_env(MLFLOW_TRACKING_URI=store, **extra_env),
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(command: list[str], cwd: Path, timeout: float = 600, **extra_env: str) -> str:
    """Run ``command`` as a user would (the project's own default MLflow store); its output.

    Fails the test, with the output's tail, when the command fails.
    """
    env = subprocess_env(**extra_env)
    if "MLFLOW_TRACKING_URI" not in extra_env:
        env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-5000:]}"
    return output


def stdout_lines(
    command: list[str], cwd: Path, timeout: float = 600, **extra_env: str
) -> list[str]:
    """Like ``run``, but only the command's standard output, as lines (no warnings, no logs)."""
    env = subprocess_env(**extra_env)
    if "MLFLOW_TRACKING_URI" not in extra_env:
        env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr[-5000:]}"
    return done.stdout.splitlines()


# The model loaded once in a fresh Python; each call a list of sentences, or a DataFrame of them
# (column ``text``), with optional inference params.
_PREDICT = """\
import json, sys, mlflow, pandas
model = mlflow.pyfunc.load_model(sys.argv[1])
answers = []
for call in json.loads(sys.argv[2]):
    inputs = call["sources"]
    if call["frame"]:
        inputs = pandas.DataFrame({"text": inputs})
    answers.append(list(model.predict(inputs, params=call["params"])))
print(json.dumps(answers))
"""


def predict_in_fresh_process(uri: str, store: str, calls: list[dict[str, Any]]) -> list[list[str]]:
    """The MLflow model ``uri`` (in the store ``store``) loaded in a fresh Python, as a user's
    process loads it, and its predictions for each call: ``{"sources": [...], "frame": bool,
    "params": {...} or None}``."""
    return python_json(_PREDICT, uri, json.dumps(calls), store=store)
