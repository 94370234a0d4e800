"""How the tests are shared out between the pytest-xdist workers (pyproject's addopts).

Each work unit runs whole on one worker, in collection order: a test module, so that its
module-scoped fixtures are built once, or a group of modules that share a session fixture worth
building once (``SHARED``). The units that take longest start first (``HEAVIEST_FIRST``), so
that the two workers finish together.

xdist's own way to group tests (``--dist loadgroup`` with ``xdist_group`` marks) does nothing
under pytest 9.2: it renames each test's ``_nodeid``, which pytest 9.2's node ids no longer read,
so every test became a work unit of its own and module fixtures were built on both workers (the
CI run that failed, docs/ci.md). This scheduler reads only the node ids the workers collected.
Loaded by tests/conftest.py; tests/test_ci.py runs it on a suite of its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# Modules that share a session fixture: the PostgreSQL cluster (one per worker) and the team's
# servers (tests/team_server.py); the sweep that the MLflow UI test looks at.
SHARED = {
    "test_server": "postgres",
    "test_team_access": "postgres",
    "test_team_server": "postgres",
    "test_team_serving": "postgres",
    "test_sweeps": "sweep",
    "test_ui": "sweep",
}
# The work units that take longest, heaviest first, from --durations on a 2-core host (docs/ci.md):
# postgres ~520 s, sweep ~200, test_remote ~150, test_readme_tour and test_resume ~110 each,
# test_attention ~100, test_transformer ~90, test_pipeline ~75; the rest under a minute each.
HEAVIEST_FIRST = (
    "postgres",
    "sweep",
    "test_remote",
    "test_readme_tour",
    "test_resume",
    "test_attention",
    "test_transformer",
    "test_pipeline",
)


def work_unit(nodeid: str) -> str:
    """The work unit of the test ``nodeid`` (``tests/test_x.py::test_y[...]``)."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return SHARED.get(module, module)


class WorkUnitScheduling(LoadScopeScheduling):
    """xdist's ``loadscope`` with ``work_unit`` as the scope: a unit goes to one worker."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """Under ``--dist loadscope``, the work units above; any other ``--dist``, xdist's own."""
    return WorkUnitScheduling(config, log) if config.getvalue("dist") == "loadscope" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heaviest work units first; the others, and the tests within a unit, as collected.
    (``--no-loadscope-reorder`` keeps this order: xdist would sort the units by size.)"""
    rank = {name: index for index, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))
