"""Where a run came from: git commit and dirty flag, DVC experiment, run name, description."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from charmt.tracking.flat import flatten

DESCRIPTION_TAG = "mlflow.note.content"  # the run's description in the MLflow UI


def _git(*args: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd if cwd is not None else os.getcwd(),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_tags() -> dict[str, str]:
    """Where a run came from: git commit, whether the tree was dirty, the DVC experiment name.

    Git is asked in the working directory: in a DVC experiment's temporary copy that is the
    copy's own checkout of the experiment's baseline commit.
    """
    tags: dict[str, str] = {}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = commit
        status = _git("status", "--porcelain", "--untracked-files=no")
        if status is not None:
            tags["git_dirty"] = str(bool(status)).lower()
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def default_run_name(tags: Mapping[str, str], now: datetime | None = None) -> str:
    """The DVC experiment's name under ``dvc exp run``; else ``repro-<commit>[-dirty]-<time>``."""
    if tags.get("dvc_experiment"):
        return tags["dvc_experiment"]
    stamp = (now or datetime.now(UTC)).strftime("%m%d-%H%M%S")
    commit = tags.get("git_commit")
    if not commit:
        return f"repro-{stamp}"
    dirty = "-dirty" if tags.get("git_dirty") == "true" else ""
    return f"repro-{commit[:7]}{dirty}-{stamp}"


def _show(value: Any) -> str:
    """A param value as params.yaml writes it (``null``, ``true``, ``0.001``, ``text``)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def changed_params(committed: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``train.latent_dim: 256 -> 128`` for each dotted key whose value differs (or is new/gone)."""
    old, new = flatten(committed), flatten(current)
    lines = []
    for key in sorted(old.keys() | new.keys()):
        if key not in old:
            lines.append(f"{key}: (not in params.yaml) -> {_show(new[key])}")
        elif key not in new:
            lines.append(f"{key}: {_show(old[key])} -> (removed)")
        elif old[key] != new[key]:
            lines.append(f"{key}: {_show(old[key])} -> {_show(new[key])}")
    return lines


def run_description(params_file: str | os.PathLike[str], tags: Mapping[str, str]) -> str:
    """The run's note (MLflow's description): which params differ from the committed file.

    Compares ``params_file`` with its version at git HEAD (the experiment's baseline commit).
    """
    path = Path(params_file)
    try:
        current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        return f"Could not read {path} to compare params: {error}"
    relative = _git("ls-files", "--full-name", "--error-unmatch", str(path), cwd=path.parent or ".")
    committed_text = _git("show", f"HEAD:{relative}", cwd=path.parent) if relative else None
    commit = tags.get("git_commit", "")[:7]
    where = f"the committed {path.name} (git {commit})" if commit else f"the committed {path.name}"
    if committed_text is None:
        return f"No committed {path.name} to compare with: every param is as logged."
    committed = yaml.safe_load(committed_text) or {}
    lines = changed_params(committed, current)
    source = f"DVC experiment {tags['dvc_experiment']}" if tags.get("dvc_experiment") else "Run"
    if not lines:
        return f"{source}: no params changed from {where}."
    changes = "\n".join(f"- {line}" for line in lines)
    return f"{source}: params changed from {where}:\n\n{changes}"
