"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests of MLflow tracking servers.

Needs the system's PostgreSQL (``.ci/install-system-packages``): skipped without it, except in
CI (env CI set), where that is a failure. PostgreSQL refuses to run as root: as root, the cluster
runs as the ``postgres`` system user in a directory it owns.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from charmt.processes import free_port


def _postgres_bin() -> Path:
    """The newest PostgreSQL server's bin directory of the system packages (Debian 12: 15;
    GitHub's Ubuntu runners: 16), or CHARMT_PG_BIN."""
    if os.environ.get("CHARMT_PG_BIN"):
        return Path(os.environ["CHARMT_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/<version>/bin")


PG_BIN = _postgres_bin()


def require(available: bool, reason: str) -> None:
    """Skip when a system package is missing; in CI that is a failure."""
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: this test must run)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Callable[[], str]]:
    """A throwaway PostgreSQL cluster on 127.0.0.1; a function that creates an empty database
    in it and returns its URI (one per server, so that no scenario sees another's runs)."""
    require(
        all((PG_BIN / tool).is_file() for tool in ("initdb", "pg_ctl", "createdb")),
        f"PostgreSQL not found in {PG_BIN}: install the postgresql package",
    )
    as_root = os.geteuid() == 0
    if as_root:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        require(user is not None and shutil.which("runuser") is not None, "no postgres user")

    def as_postgres(*command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if as_root else list(command)

    # Not under pytest's tmp_path: the postgres user must own it and reach it.
    directory = Path(tempfile.mkdtemp(prefix="charmt-pg-"))
    if as_root:
        os.chown(directory, user.pw_uid, user.pw_gid)
    port, data = free_port(), directory / "data"

    def pg(*command: str) -> None:
        done = subprocess.run(as_postgres(*command), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"

    try:
        pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off"
        pg(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(directory / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        numbers = itertools.count(1)

        def database() -> str:
            name = f"mlflow{next(numbers)}"
            pg(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", name)
            return f"postgresql://postgres@127.0.0.1:{port}/{name}"

        yield database
    finally:
        subprocess.run(
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(directory, ignore_errors=True)
