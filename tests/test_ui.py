"""End to end: the MLflow UI over the sweep's store, in a real headless Chromium.

Starts `mlflow ui` on 127.0.0.1 over the store of the ``sweep`` fixture (four runs of the real
pipeline, differing in two params), opens the link the train stage printed, and checks what a user
looks for: the runs table lists every run by name and, once the user adds the columns, shows the
changed params and the key metrics; the chart view draws `val_loss` with one line per run.
Screenshots go to $CHARMT_SCREENSHOTS (default: the test's temporary directory); CI keeps them.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium, chromium-driver), or the
browser and driver named by CHARMT_CHROMIUM and CHARMT_CHROMEDRIVER: skipped without them, failed
without them when CI is set.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import SWEEP_PARAMS, run, subprocess_env

from charmt import tracking

pytestmark = pytest.mark.e2e

# The system packages' paths; CHARMT_CHROMIUM / CHARMT_CHROMEDRIVER name another Chrome and its
# driver (GitHub's runners have Google Chrome and a matching chromedriver preinstalled).
CHROMIUM = os.environ.get("CHARMT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHARMT_CHROMEDRIVER", "/usr/bin/chromedriver")
# What a user compares: the params the sweep changed and the metrics that matter.
COLUMNS = ("train.latent_dim", "train.learning_rate", "best_val_loss", "char_accuracy")
WAIT_S = 120  # the UI loads slowly on a busy 2-core machine
SWEEP_EPOCHS = SWEEP_PARAMS["train"]["epochs"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = Path(os.environ.get("CHARMT_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def ui(sweep) -> Iterator[str]:
    """`mlflow ui` over the sweep's store on a free port of 127.0.0.1; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri"]
    command += [sweep.store, "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command, cwd=sweep.project, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if requests.get(f"{base}/health", timeout=5).ok:
                        break
                except requests.ConnectionError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"mlflow ui did not start:\n{log.read().decode()[-3000:]}")
                time.sleep(1)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


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
    time.sleep(1)
    # The matching entry's label; the search highlights the match, so compare whole texts.
    entries = driver.execute_script(
        """
        return Array.from(document.querySelectorAll('[role=dialog] *')).filter(
          e => e.children.length <= 1 && e.innerText && e.innerText.trim() === arguments[0]
            && e.offsetParent);
        """,
        name,
    )
    assert entries, f"no column {name!r} offered under Columns"
    entries[-1].click()
    search.send_keys(Keys.ESCAPE)
    time.sleep(1)


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


def test_the_printed_link_opens_the_runs_table_with_params_and_metrics(
    sweep, ui, browser, screenshots
):
    names = run_names(sweep)
    assert len(names) == 4
    link = printed_link(sweep, names[0])
    assert link.startswith(f"{tracking.DEFAULT_UI}/#/experiments/")
    browser.get(ui + link.removeprefix(tracking.DEFAULT_UI))

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
    link = printed_link(sweep, names[0])
    browser.get(ui + link.removeprefix(tracking.DEFAULT_UI))
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
    time.sleep(2)
    browser.save_screenshot(str(screenshots / "3-chart-view-val-loss.png"))
    for name in names:
        assert chart["legend"].count(f"{name} (val_loss)") == 1, chart["legend"]
    assert chart["points"] == [SWEEP_EPOCHS] * len(names), chart["points"]
