"""``charmt ui``: the MLflow UI over this project's store, opened on the runs table.

MLflow 3.17 opens an experiment on its GenAI overview unless the link asks for the runs table, so
a bare ``mlflow ui`` leaves a user one hand-built URL away from comparing runs. This starts the UI
on 127.0.0.1 over the store the pipeline logs to, waits until it answers, and prints (and, where a
browser is available, opens) the link to the experiment's runs in the "Model training" view.

The UI runs in its own process group, so that stopping ``charmt ui`` (Ctrl-C, SIGTERM) stops the
server and every worker it started, not only the process it was launched as.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path

from charmt.errors import CharmtError
from charmt.io.processes import HOST, free_port, stop_group, wait_until_answers

DEFAULT_PORT = 5000
DEFAULT_EXPERIMENT = "charmt"
# A cold start imports MLflow and its server (several seconds, far more on a busy 2-core machine).
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 15.0


def experiment_name(params_file: str | os.PathLike[str] = "params.yaml") -> str:
    """The experiment the pipeline logs to: ``tracking.experiment_name`` in the params file when
    there is one (checked as the stages check it), else ``charmt``."""
    from charmt.params import TrackingParams, read

    if not Path(params_file).is_file():
        return DEFAULT_EXPERIMENT
    tracking: TrackingParams = read(params_file, "tracking")["tracking"]
    return tracking.experiment_name


def _check_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise CharmtError(
                f"port {port} on {host} is in use (another MLflow UI?); stop it, or choose "
                "another with --port N (--port 0 picks a free one)"
            ) from None


def browser_available() -> bool:
    """Whether a graphical browser can be opened: always on macOS and Windows, on other systems
    only with a display (``webbrowser`` would otherwise start a text browser in the terminal)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def wait_until_up(base: str, process: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> None:
    """Return once ``base``/health answers; fail if the UI exits first or takes too long."""
    why_not = wait_until_answers(f"{base}/health", process, timeout)
    if why_not is not None:
        output = " (its output is above)" if process.poll() is not None else ""
        raise CharmtError(f"mlflow ui {why_not}{output}")


def _print_link(link: str) -> None:
    print(link, flush=True)


def run_ui(
    port: int = DEFAULT_PORT,
    experiment: str | None = None,
    open_browser: bool = True,
    on_link: Callable[[str], None] | None = None,
) -> None:
    """Serve the MLflow UI over the project's store until interrupted; ``on_link`` gets the
    runs-table link once the UI answers.

    With ``MLFLOW_TRACKING_URI`` naming a tracking server, that server already serves the UI:
    only its link is given.
    """
    from charmt import tracking

    if on_link is None:
        on_link = _print_link
    name = experiment or experiment_name()
    uri = tracking.tracking_uri()
    if uri.startswith(("http://", "https://")):
        link = tracking.runs_view_url(tracking.get_or_create_experiment(name))
        on_link(link)
        if open_browser and browser_available():
            webbrowser.open(link)
        return

    if port == 0:
        port = free_port()
    _check_port(HOST, port)
    # Creates or upgrades the store once, before the UI opens it (see tracking.configure).
    experiment_id = tracking.get_or_create_experiment(name)
    base = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", HOST, "--port", str(port)]
    # The UI's own log goes to stderr: stdout carries the link only, for scripts and tests.
    process = subprocess.Popen(command, stdout=sys.stderr.fileno(), start_new_session=True)
    try:
        wait_until_up(base, process)
        link = tracking.runs_view_url(experiment_id, ui=base)
        on_link(link)
        if open_browser and browser_available():
            webbrowser.open(link)
        print(f"MLflow UI over {uri}; Ctrl-C stops it", file=sys.stderr)
        process.wait()
        raise CharmtError(f"mlflow ui exited with status {process.returncode}")
    except KeyboardInterrupt:
        print("stopping the MLflow UI", file=sys.stderr)
    finally:
        stop_group(process, timeout=STOP_TIMEOUT_S)
