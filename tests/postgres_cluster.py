"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests of MLflow tracking servers: one
per test process, with a template database that MLflow's migrations ran on once, which every
test's database is copied from.

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

from charmt.io.processes import free_port


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


# The database MLflow's migrations run on, once per cluster; each test's database is a copy.
TEMPLATE = "mlflow_template"


def migrate(uri: str) -> None:
    """What ``mlflow db upgrade uri`` does to an empty database (MLflow's tables, every alembic
    migration), in this process: ~1 s, where the command's start-up alone takes 3-4 s. Its
    connections are closed after: ``createdb -T`` refuses a template anyone is connected to."""
    from mlflow.store.db import utils

    engine = utils.create_sqlalchemy_engine_with_retry(uri)
    try:
        assert utils._is_empty_database(engine), uri
        utils._initialize_tables(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Callable[[], str]]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, one per test process; a function that creates
    an empty database in it and returns its URI (one per server, so that no scenario sees
    another's runs).

    Each database is a copy (``createdb -T``, ~0.1 s) of ``mlflow_template``, on which MLflow's
    tables were created once (``migrate``): no test's server runs the migrations from scratch
    (1.3-1.6 s each). The copy has the schema at head and no experiment: a server started on it
    creates the Default experiment with its own artifact root, as on a new database."""
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
        server = f"postgresql://postgres@127.0.0.1:{port}"
        createdb = (str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres")
        pg(*createdb, TEMPLATE)
        migrate(f"{server}/{TEMPLATE}")
        numbers = itertools.count(1)

        def database() -> str:
            name = f"mlflow{next(numbers)}"
            pg(*createdb, "-T", TEMPLATE, name)
            return f"{server}/{name}"

        yield database
    finally:
        subprocess.run(
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(directory, ignore_errors=True)
