"""The sha256 of a file: what checks downloads and saved models and keys checkpoints and code."""

from __future__ import annotations

import hashlib
import os


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The file's sha256, as 64 lowercase hex digits; read in chunks (``hashlib.file_digest``)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
