"""Which of the project's modules a script runs: its ``charmt`` imports, followed transitively.

Read from the code itself (``ast``), imports inside functions included, so the answer cannot
drift from what runs. The train stage keys its checkpoints on these files' contents (an edited
``model.py`` never resumes old weights), and a test checks that each stage in ``dvc.yaml`` lists
every one of its modules among its deps (an edited module always re-runs the stages it shapes).
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

from charmt.io.digest import sha256_of

PACKAGE = "charmt"


def _source_root() -> Path:
    """The directory that holds the ``charmt`` package (``src/``), found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.origin is not None, "charmt is not installed"
    return Path(spec.origin).parent.parent


def _module_path(name: str) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``); None if it is no module.

    Looked up on disk, never imported: importing would run the module (TensorFlow, seconds).
    """
    base = _source_root().joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    """The ``charmt`` modules a file imports by name, with their parent packages."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from charmt import tracking` imports a module; `from charmt.x import y` a name
            # (or a submodule): whichever of them are modules count.
            candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in candidates:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                parts = name.split(".")
                names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def module_files(script: str | os.PathLike[str]) -> list[Path]:
    """The source files of every ``charmt`` module that running ``script`` imports, sorted."""
    seen: dict[str, Path] = {}
    pending = list(_imported_names(Path(script)))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_path(name)
        if path is None:
            continue  # a name imported from a module, not a module
        seen[name] = path
        pending.extend(_imported_names(path) - seen.keys())
    return sorted(seen.values())


def file_digests(files: list[Path]) -> dict[str, str]:
    """The sha256 of each file, keyed by its path relative to the ``charmt`` package's parent."""
    root = _source_root()
    digests = {}
    for file in files:
        name = str(file.relative_to(root)) if file.is_relative_to(root) else str(file)
        digests[name] = sha256_of(file)
    return digests
