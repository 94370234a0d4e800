"""The key of a training configuration: a digest of everything its result depends on.

A checkpoint is resumed only by a run with the same key (``charmt.training.checkpoint``): the
train params, the data's contents and the code that trains all go into it, so a changed param,
changed data or an edited module never resumes a stale checkpoint. ``changed_inputs`` says, in
words, which of them changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from charmt.io.digest import sha256_of


def file_digest(paths: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 over the names and contents of ``paths`` (files, or directories walked in order)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode() + b"\0")
            digest.update(bytes.fromhex(sha256_of(file)))
    return digest.hexdigest()


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """A short digest of ``inputs`` (JSON-able: params, data digests), the checkpoint's key."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changed_inputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprint inputs, in words: ``train``, ``code (charmt/x.py)``."""
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if isinstance(before, Mapping) and isinstance(after, Mapping) and name == "code":
            files = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            changes.append(f"code ({', '.join(files)})")
        else:
            changes.append(name)
    return changes
