"""What a command-line user sees on standard error: charmt's own messages, one a line.

TensorFlow's C++ runtime writes its start-up lines (absl, oneDNN, CPU features) straight to file
descriptor 2, before and regardless of ``TF_CPP_MIN_LOG_LEVEL``, and libraries add their own
Python warnings: around every answer, a user's real warning would drown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator


class _StderrHandler(logging.StreamHandler):
    """Log records to whatever ``sys.stderr`` is when they are emitted."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


@contextlib.contextmanager
def only_charmt_on_stderr() -> Iterator[None]:
    """Keep standard error to charmt's own messages while the block runs.

    Descriptor 2 goes to /dev/null and Python's ``sys.stderr`` to a copy of the real one; other
    libraries' Python warnings and their log records below ERROR are dropped. Everything is
    restored afterwards.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved_stderr, real = sys.stderr, None
    try:
        is_fd_2 = saved_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # already captured (a test, a wrapper)
        is_fd_2 = False
    if is_fd_2:
        saved_stderr.flush()
        real = os.dup(2)
        sys.stderr = os.fdopen(real, "w", buffering=1, encoding="utf-8", closefd=False)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    root, ours = logging.getLogger(), logging.getLogger("charmt")
    levels = root.level, ours.level
    root.setLevel(logging.ERROR)
    ours.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
        if real is not None:
            sys.stderr.flush()
            os.dup2(real, 2)
            os.close(real)
            sys.stderr = saved_stderr


def log_to_stderr() -> None:
    """Log records of WARNING and above as ``LEVEL: message`` lines on standard error."""
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
