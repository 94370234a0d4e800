"""The one exception type that users see as a message, not a traceback."""

import signal
import sys
from collections.abc import Callable
from types import FrameType


class CharmtError(Exception):
    """An error the user can fix: its message names the file, line or value and what to do.

    Stage scripts and the command line print it as one line and exit non-zero.
    """


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def exit_on_error(main: Callable[[], None]) -> None:
    """Run a command's ``main``; a ``CharmtError`` becomes one line on stderr and exit status 1.

    SIGTERM (what ``kill``, a CI runner or a container stop sends) is handled like Ctrl-C: the
    command unwinds, so temporary files are removed and an MLflow run is marked KILLED.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except CharmtError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        # Every output is written to a temporary name and renamed when complete.
        print("interrupted; no output was left half-written", file=sys.stderr)
        sys.exit(130)
