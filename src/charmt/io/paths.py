"""Where the project lives, even when DVC runs a stage in a temporary copy of it.

``dvc exp run --temp`` and queued experiments run stages in ``<project>/.dvc/tmp/exps/<tmp>/``.
Anything that must outlive the copy (the MLflow store, a local data file given by a relative
path) is resolved against the real project root instead of the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

_EXPERIMENT_COPY = os.sep + os.path.join(".dvc", "tmp", "exps") + os.sep


def project_root(cwd: str | os.PathLike[str] | None = None) -> Path:
    """The project root for ``cwd`` (default: the current directory).

    Inside a DVC experiment copy this is the project that holds the copy; elsewhere it is ``cwd``.
    """
    here = Path(cwd if cwd is not None else os.getcwd()).resolve()
    text = str(here) + os.sep
    if _EXPERIMENT_COPY in text:
        return Path(text.split(_EXPERIMENT_COPY, 1)[0])
    return here


def resolve_local(path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> Path:
    """An absolute path for a user-given path; a relative one is taken from the project root."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    return project_root(cwd) / candidate
