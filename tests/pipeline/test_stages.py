"""Stage scripts as DVC runs them: a user's mistake is one line on stderr and exit status 1."""

import subprocess
import sys

import yaml
from commands import subprocess_env
from projects import PROJECT


def run_stage(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROJECT / "stages" / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )


def write_params(tmp_path, **data) -> None:
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"].update(data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))


def test_download_of_a_missing_local_file_fails_in_one_line(tmp_path):
    write_params(tmp_path, url="nowhere/fra-eng.zip")
    done = run_stage("download.py", "--out", "data/raw/fra.txt", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "nowhere/fra-eng.zip" in done.stderr
    assert not (tmp_path / "data" / "raw" / "fra.txt").exists()


def test_preprocess_of_a_malformed_line_names_it_and_writes_nothing(tmp_path):
    write_params(tmp_path, num_samples=10)
    raw = tmp_path / "fra.txt"
    raw.write_text("Go.\tVa !\nRun!\tCours !\nthis line has no tab\n", encoding="utf-8")
    done = run_stage(
        "preprocess.py",
        "--raw",
        str(raw),
        "--out",
        "prepared",
        "--metrics",
        "data.json",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert f"{raw}:3" in done.stderr and "this line has no tab" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "data.json").exists()
