"""The download stage: ``fra.txt`` fetched from ``data.url`` (an http(s) URL, or a local zip or
text file), checked against ``data.sha256`` when it is set."""

from __future__ import annotations

import os
from pathlib import Path

from charmt.params import DataParams, read

# The params.yaml sections the stage reads.
SECTIONS = ("data",)


def run(params_file: str | os.PathLike[str], out: Path) -> Path:
    """Read the stage's params, then fetch ``fra.txt`` into ``out``; ``out``."""
    data: DataParams = read(params_file, *SECTIONS)["data"]

    from charmt.data.download import fetch_pairs_file  # after the params check: it imports requests

    fetch_pairs_file(data.url, out, data.sha256)
    print(f"wrote {out}")
    return out
