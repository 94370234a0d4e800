"""Reading params.yaml, the one place every knob of the pipeline lives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from charmt.errors import CharmtError


def load_params(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """The whole params file as a dict."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CharmtError(f"{path}: no such file; run from the project root") from None
    except yaml.YAMLError as error:
        raise CharmtError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(params, dict):
        raise CharmtError(f"{path}: expected a mapping of sections (data, train, ...)")
    return params


def section(params: dict[str, Any], name: str, path: str = "params.yaml") -> dict[str, Any]:
    """One section of params; a clear error when it is missing."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise CharmtError(f"{path}: section {name!r} is missing or not a mapping")
    return value
