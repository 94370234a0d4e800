"""End to end: `charmt ui` over the sweep's store, in a real headless Chromium.

Starts `charmt ui --no-browser` in the project of the ``sweep`` fixture (four runs of the real
pipeline, differing in two params), over its default store, opens the link it printed (the one
the train stage printed, on charmt ui's address), and checks what a user looks for: the runs
table lists every run by name and, once the user adds the columns, shows the changed params and
the key metrics; the chart view draws `val_loss` with one line per run. Ctrl-C stops charmt ui
and the whole MLflow UI it started. Screenshots go to $CHARMT_SCREENSHOTS (default: the test's
temporary directory); CI keeps them.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium, chromium-driver), or the
browser and driver named by CHARMT_CHROMIUM and CHARMT_CHROMEDRIVER: skipped without them, failed
without them when CI is set.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from commands import run, subprocess_env
from sweeps import SWEEP_PARAMS

from charmt import tracking
from charmt.io.processes import stop_group

pytestmark = pytest.mark.e2e  # on the sweep's worker (tests/scheduling.py)

# The system packages' paths; CHARMT_CHROMIUM / CHARMT_CHROMEDRIVER name another Chrome and its
# driver (GitHub's runners have Google Chrome and a matching chromedriver preinstalled).
CHROMIUM = os.environ.get("CHARMT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHARMT_CHROMEDRIVER", "/usr/bin/chromedriver")
# What a user compares: the params the sweep changed and the metrics that matter.
COLUMNS = ("train.latent_dim", "train.learning_rate", "best_val_loss", "char_accuracy")
WAIT_S = 120  # the UI loads slowly on a busy 2-core machine
SWEEP_EPOCHS = SWEEP_PARAMS["train"]["epochs"]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = Path(os.environ.get("CHARMT_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def start_charmt_ui(project: Path, log) -> subprocess.Popen:
    """``charmt ui --no-browser`` in ``project`` over its own default store, as a user starts
    it (SIGINT restored, so that Ctrl-C works: see NOTES on background processes)."""
    env = {k: v for k, v in subprocess_env().items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        [sys.executable, "-m", "charmt.cli.main", "ui", "--no-browser", "--port", "0"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def read_link(process: subprocess.Popen, log) -> str:
    """The one line ``charmt ui`` prints on stdout once the UI answers."""
    line = process.stdout.readline().strip()
    if not line:
        process.wait(timeout=60)
        log.seek(0)
        pytest.fail(f"charmt ui printed no link:\n{log.read().decode()[-3000:]}")
    return line


class RunningUI:
    """`charmt ui` over a project's store on a free port of 127.0.0.1, started when first asked
    for and again after a test stopped it (the Ctrl-C test), so that tests pass in any order."""

    def __init__(self, project: Path, log) -> None:
        self.project, self.log = project, log
        self.process: subprocess.Popen | None = None
        self._link = ""

    @property
    def link(self) -> str:
        """The link it printed."""
        if self.process is None or self.process.poll() is not None:
            self.stop()
            self.process = start_charmt_ui(self.project, self.log)
            self._link = read_link(self.process, self.log)
        return self._link

    def stop(self) -> None:
        # Not once reaped (after Ctrl-C): its group id may belong to another process by then.
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process, timeout=30)
        self.process = None


@pytest.fixture(scope="module")
def running_ui(sweep) -> Iterator[RunningUI]:
    with tempfile.TemporaryFile() as log:
        running = RunningUI(sweep.project, log)
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture
def ui(running_ui) -> str:
    """The link `charmt ui` printed, over the sweep project's store."""
    return running_ui.link


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system packages, driven by its own chromedriver."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        reason = f"{', '.join(missing)} not installed (Debian: chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=2400,1100",
    ):
        options.add_argument(flag)
    # The system chromedriver, named explicitly: Selenium Manager would try the network.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def printed_link(sweep, experiment_name: str) -> str:
    """The runs link the train stage printed for ``experiment_name`` (from `dvc queue logs`)."""
    output = run(["dvc", "queue", "logs", experiment_name], sweep.project)
    found = re.findall(r"compare runs: (\S+)", output)
    assert found, f"no link in the train stage's output:\n{output[-3000:]}"
    return found[-1]


def run_names(sweep) -> list[str]:
    import mlflow

    client = mlflow.MlflowClient(sweep.store)
    experiment = client.get_experiment_by_name("charmt")
    return sorted(r.info.run_name for r in client.search_runs([experiment.experiment_id]))


def rows(driver) -> dict[str, dict[str, str]]:
    """The runs table as shown: run name -> {column header: cell text}."""
    return driver.execute_script(
        """
        const headers = {};
        for (const h of document.querySelectorAll('.ag-header-cell[col-id]')) {
          headers[h.getAttribute('col-id')] = h.innerText.trim();
        }
        const byIndex = {};
        for (const cell of document.querySelectorAll('[row-index] .ag-cell[col-id]')) {
          const index = cell.closest('[row-index]').getAttribute('row-index');
          const name = headers[cell.getAttribute('col-id')] || cell.getAttribute('col-id');
          (byIndex[index] = byIndex[index] || {})[name] = cell.innerText.trim();
        }
        const table = {};
        // The name cell also holds the run's colour ('#5f7281'): the name is its last line.
        for (const row of Object.values(byIndex)) {
          table[row['Run Name'].split('\\n').pop()] = row;
        }
        return table;
        """
    )


def add_column(driver, name: str) -> None:
    """Columns -> search -> tick ``name``, as a user adds a column to the runs table."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    (button,) = [
        b
        for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="column-selection-dropdown"]')
        if b.text.strip() == "Columns"
    ]
    button.click()
    search = wait_for(driver, 'input[placeholder="Search columns"]')
    search.send_keys(name)

    # The matching entry's label; the search highlights the match, so compare whole texts.
    def entries(d):
        return d.execute_script(
            """
            return Array.from(document.querySelectorAll('[role=dialog] *')).filter(
              e => e.children.length <= 1 && e.innerText && e.innerText.trim() === arguments[0]
                && e.offsetParent);
            """,
            name,
        )

    found = wait_until(driver, entries, f"column {name!r} offered under Columns")
    found[-1].click()
    search.send_keys(Keys.ESCAPE)
    menu = 'input[placeholder="Search columns"]'
    wait_until(
        driver,
        lambda d: not any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, menu)),
        "the Columns menu to close",
    )


def close_assistant(driver) -> None:
    """Close the MLflow Assistant panel, which covers a third of the page."""
    from selenium.webdriver.common.by import By

    for close in driver.find_elements(
        By.CSS_SELECTOR, '[data-component-id="mlflow.assistant.chat_panel.close"]'
    ):
        close.click()


def wait_for(driver, css: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def wait_until(driver, condition, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what}")


def test_charmt_ui_prints_the_link_the_train_stage_printed_on_its_own_address(sweep, ui):
    names = run_names(sweep)
    assert len(names) == 4
    printed = printed_link(sweep, names[0])
    assert printed.startswith(f"{tracking.DEFAULT_UI}/#/experiments/")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", ui.split("/#/")[0]), ui
    assert ui.split("/#/")[1] == printed.split("/#/")[1]
    assert ui.endswith("/runs?workflowType=machine_learning")


def test_charmt_ui_opens_on_the_runs_table_with_params_and_metrics(sweep, ui, browser, screenshots):
    names = run_names(sweep)
    assert len(names) == 4
    browser.get(ui)

    # Every run by name, on the runs table (not the GenAI overview a bare link opens on).
    wait_until(browser, lambda d: set(names) <= set(rows(d)), "the four runs in the runs table")
    assert "workflowType=machine_learning" in browser.current_url
    browser.save_screenshot(str(screenshots / "1-runs-table.png"))

    close_assistant(browser)
    for column in (*COLUMNS, "Description"):
        add_column(browser, column)
    table = wait_until(
        browser,
        lambda d: (t := rows(d)) and all(c in next(iter(t.values())) for c in COLUMNS) and t,
        "the added columns",
    )
    browser.save_screenshot(str(screenshots / "2-runs-table-with-columns.png"))

    import mlflow

    client = mlflow.MlflowClient(sweep.store)
    experiment = client.get_experiment_by_name("charmt")
    for logged in client.search_runs([experiment.experiment_id]):
        shown = table[logged.info.run_name]
        for param in ("train.latent_dim", "train.learning_rate"):
            assert shown[param] == logged.data.params[param]
        for metric in ("best_val_loss", "char_accuracy"):
            assert float(shown[metric]) == pytest.approx(logged.data.metrics[metric], rel=1e-2)
        assert "params changed" in shown["Description"]


def test_the_chart_view_draws_val_loss_with_one_line_per_run(sweep, ui, browser, screenshots):
    from selenium.webdriver.common.by import By

    names = run_names(sweep)
    browser.get(ui)
    wait_until(browser, lambda d: set(names) <= set(rows(d)), "the runs table")
    close_assistant(browser)
    browser.execute_script(
        "arguments[0].click()",
        browser.find_element(By.CSS_SELECTOR, 'input[name="runs-view-mode"][value="CHART"]'),
    )

    # The chart view draws a card per metric; narrow them to val_loss as a user would.
    wait_for(browser, 'input[placeholder="Search metric charts"]').send_keys("val_loss")

    # The cards re-render while the runs load: read the val_loss card in one script each time.
    # Plotly draws each series twice here (a line with markers, and a bare line under it): the
    # markers count the series, one per run, with a point per epoch.
    def val_loss_chart(driver):
        return driver.execute_script(
            """
            for (const card of document.querySelectorAll(
                '[data-testid="experiment-view-compare-runs-card"]')) {
              if (card.innerText.split('\\n')[0].trim() !== 'val_loss') continue;
              const points = Array.from(
                card.querySelectorAll('.js-plotly-plot .scatterlayer g.trace'))
                .map(t => t.querySelectorAll('path.point').length).filter(n => n > 0);
              card.scrollIntoView({block: 'center'});
              return {legend: card.innerText, points: points};
            }
            return null;
            """
        )

    chart = wait_until(
        browser,
        lambda d: (c := val_loss_chart(d)) and len(c["points"]) >= len(names) and c,
        "the val_loss chart with a line per run",
    )
    # The card was scrolled into view: wait until it is there before the screenshot.
    wait_until(
        browser,
        lambda d: d.execute_script(
            """
            for (const card of document.querySelectorAll(
                '[data-testid="experiment-view-compare-runs-card"]')) {
              if (card.innerText.split('\\n')[0].trim() !== 'val_loss') continue;
              const box = card.getBoundingClientRect();
              return box.top >= 0 && box.bottom <= window.innerHeight;
            }
            return false;
            """
        ),
        "the val_loss chart in view",
    )
    browser.save_screenshot(str(screenshots / "3-chart-view-val-loss.png"))
    for name in names:
        assert chart["legend"].count(f"{name} (val_loss)") == 1, chart["legend"]
    assert chart["points"] == [SWEEP_EPOCHS] * len(names), chart["points"]


def test_ctrl_c_stops_charmt_ui_and_everything_it_started(running_ui):
    """Ctrl-C, as a terminal sends it (SIGINT to charmt's process group): charmt ui exits, and
    the MLflow UI it started, in its own process group, is gone with all its workers. (The UI
    the other tests use: stopped last in this module's order, started again if asked for.)"""
    import psutil

    assert "/runs?workflowType=machine_learning" in running_ui.link
    process = running_ui.process
    started = psutil.Process(process.pid).children(recursive=True)
    assert started, "charmt ui started no MLflow UI"
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
