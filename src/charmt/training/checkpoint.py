"""Training checkpoints: resume an interrupted train stage from its last finished epoch.

DVC deletes a stage's outputs before it runs the stage, so checkpoints live elsewhere: a
git-ignored directory given to the train stage as an argument but not declared as an output.

Layout: ``<root>/<fingerprint>/epoch-0007/`` holds everything needed to continue after epoch 7
(``state.json`` plus the weight files the trainer writes). A checkpoint directory is written under
a temporary name and renamed into place only once complete, and older epochs are removed only
after that, so a hard kill (SIGKILL, power loss) at any moment leaves the last complete
checkpoint loadable. A configuration's key is its ``charmt.training.fingerprint``, a digest of
everything the result depends on: a changed param, changed data or edited code never resumes a
stale checkpoint, and ``discard_stale`` says which of them changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charmt.training.fingerprint import changed_inputs, fingerprint

STATE_FILE = "state.json"

# Beside a configuration's epochs: the inputs its fingerprint was made of, to say what changed.
INPUTS_FILE = "inputs.json"
_EPOCH_DIR = re.compile(r"epoch-(\d+)")


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: the epochs finished, the trainer's state, and its directory."""

    epoch: int
    state: dict[str, Any]
    directory: Path


class Checkpoints:
    """The checkpoints of one training configuration (``key``, a ``fingerprint``) under ``root``.

    With ``inputs`` (what the key was made of), they are kept beside the epochs, so that
    ``discard_stale`` can say what changed since a checkpoint it does not use.
    """

    def __init__(
        self, root: str | os.PathLike[str], key: str, inputs: Mapping[str, Any] | None = None
    ) -> None:
        self.root = Path(root)
        self.key = key
        self.directory = self.root / key
        self.inputs = dict(inputs) if inputs is not None else None

    @classmethod
    def of(cls, root: str | os.PathLike[str], inputs: Mapping[str, Any]) -> Checkpoints:
        """The checkpoints of the configuration ``inputs`` (keyed by their ``fingerprint``)."""
        return cls(root, fingerprint(inputs), inputs)

    def discard_stale(self) -> list[str]:
        """Remove checkpoints of other configurations and leftovers of interrupted writes.

        Returns one line for each discarded configuration that held a complete checkpoint: which
        epoch it had and, where its inputs were recorded, what changed since.
        """
        reasons = []
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name == self.key:
                    continue
                stale = Checkpoints(self.root, entry.name).latest() if entry.is_dir() else None
                if stale is not None:
                    reasons.append(self._why_not(stale))
                _remove(entry)
        if self.directory.is_dir():
            for entry in self.directory.iterdir():
                if not _EPOCH_DIR.fullmatch(entry.name) and entry.name != INPUTS_FILE:
                    _remove(entry)
        return reasons

    def _why_not(self, stale: Checkpoint) -> str:
        try:
            old = json.loads((stale.directory.parent / INPUTS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old is None or self.inputs is None:
            what = "other params, data or code"
        else:
            what = "another " + ", ".join(changed_inputs(old, self.inputs) or ["configuration"])
        return (
            f"not resuming the checkpoint after epoch {stale.epoch} in {stale.directory}: it was "
            f"made with {what}; training starts from epoch 1"
        )

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint of this configuration, or None."""
        if not self.directory.is_dir():
            return None
        epochs = sorted(
            (int(m.group(1)), entry)
            for entry in self.directory.iterdir()
            if (m := _EPOCH_DIR.fullmatch(entry.name))
        )
        for epoch, entry in reversed(epochs):
            try:
                state = json.loads((entry / STATE_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not expected (directories appear whole), but never fatal
            if state.get("key") == self.key and state.get("epoch") == epoch:
                return Checkpoint(epoch, state, entry)
        return None

    def save(
        self, epoch: int, state: Mapping[str, Any], write_files: Callable[[Path], None]
    ) -> Path:
        """Write the checkpoint after ``epoch`` finished epochs, atomically; drop older ones.

        ``write_files(directory)`` writes the trainer's files (weights) into a fresh directory;
        ``state`` (JSON-able) goes beside them.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.inputs is not None and not (self.directory / INPUTS_FILE).is_file():
            (self.directory / INPUTS_FILE).write_text(
                json.dumps(self.inputs, sort_keys=True, default=str), encoding="utf-8"
            )
        final = self.directory / f"epoch-{epoch:04d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=self.directory))
        try:
            write_files(tmp)
            with (tmp / STATE_FILE).open("w", encoding="utf-8") as out:
                json.dump({**state, "key": self.key, "epoch": epoch}, out)
                out.flush()
                os.fsync(out.fileno())
            for file in tmp.iterdir():
                _fsync(file)
            _remove(final)  # a checkpoint of this epoch from a run that was killed right after
            os.replace(tmp, final)
            _fsync(self.directory)
        finally:
            _remove(tmp)
        for entry in self.directory.iterdir():
            match = _EPOCH_DIR.fullmatch(entry.name)
            if match and int(match.group(1)) < epoch:
                _remove(entry)
        return final

    def clear(self) -> None:
        """Remove every checkpoint under ``root`` (the stage completed)."""
        _remove(self.root)


def _fsync(path: Path) -> None:
    # Renaming is atomic, but without fsync a power loss can leave a renamed file empty.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
