"""``charmt translate`` as a user runs it: a real process, arguments or standard input."""

import subprocess

import pytest
from commands import subprocess_env


def charmt(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["charmt", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )


@pytest.mark.e2e
def test_translates_arguments_one_line_each(trained):
    sources = [p.source for p in trained.held_out[:3]]
    done = charmt("translate", "--model", str(trained.model_dir), *sources)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == trained.translator.translate(sources)


@pytest.mark.e2e
def test_translates_standard_input_in_batches(trained):
    sources = [p.source for p in trained.held_out[:7]]
    done = charmt(
        "translate",
        "--model",
        str(trained.model_dir),
        "--batch-size",
        "3",
        stdin="\n".join(sources) + "\n",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == trained.translator.translate(sources)


@pytest.mark.e2e
def test_missing_model_is_one_clear_line_and_exit_1(tmp_path):
    done = charmt("translate", "--model", str(tmp_path / "nowhere"), "Go.")
    assert done.returncode == 1
    assert "nowhere" in done.stderr and "dvc repro train" in done.stderr
    assert "Traceback" not in done.stderr


def test_ui_on_a_port_in_use_is_one_clear_line_and_exit_1(tmp_path):
    import socket
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "charmt.cli.main", "ui", "--no-browser", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=120,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is in use (another MLflow UI?); stop it, or choose "
        "another with --port N (--port 0 picks a free one)"
    )


def test_ui_opens_the_experiment_params_yaml_names(tmp_path):
    from charmt.cli.ui import experiment_name

    assert experiment_name(tmp_path / "params.yaml") == "charmt"  # no params file
    (tmp_path / "params.yaml").write_text("tracking:\n  experiment_name: sweeps\n")
    assert experiment_name(tmp_path / "params.yaml") == "sweeps"


@pytest.mark.e2e
def test_standard_error_holds_charmt_messages_only_unless_verbose(trained):
    """No TensorFlow start-up lines (absl, oneDNN, CPU features) around the answer: a user's real
    warning (here, a character never seen in training) stands alone."""
    env = {k: v for k, v in subprocess_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}

    def translate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["charmt", "translate", "--model", str(trained.model_dir), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    quiet = translate("abc")
    assert quiet.returncode == 0 and quiet.stderr == ""
    warned = translate("abz")
    assert warned.stderr.splitlines() == [
        "WARNING: 1 sentence(s) contain characters never seen in training, read as unknown: z"
    ]
    verbose = translate("--verbose", "abz")
    assert verbose.stdout == warned.stdout
    assert warned.stderr.strip() in verbose.stderr
    assert len(verbose.stderr.splitlines()) > 1, "--verbose shows TensorFlow's own lines"
