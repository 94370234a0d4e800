"""Benchmark: many processes writing one fresh SQLite MLflow store at once.

    python bench/store_contention.py                       # 4 and 8 writers, both ways
    python bench/store_contention.py --writers 8 --epochs 50 --way charmt

Each writer is a fresh process that opens the store, gets or creates the experiment, starts a run,
logs 30 params and ``--epochs`` steps of 5 metrics, then ends the run: what a training run of the
pipeline writes, minus the models. All writers start together on a store that does not exist yet
(``--existing``: whose tables exist, but not the experiment).
``plain`` is MLflow used directly (``mlflow.set_experiment`` + ``mlflow.start_run``); ``charmt``
goes through ``charmt.tracking`` (store created once under a file lock, experiment get-or-create,
writes under the lock and retried). It prints, per way, how many writers failed and with what, how
many runs landed FINISHED in the named experiment, and the wall time. Not part of the test suite:
the machine is shared, so the figures are only indicative.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

EXPERIMENT = "contention"


def _writer(way: str, uri: str, epochs: int, start: float, results: multiprocessing.Queue) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    import mlflow

    from charmt import tracking

    params = {f"p{i}": i for i in range(30)}
    time.sleep(max(0.0, start - time.time()))  # start together
    try:
        if way == "plain":
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(EXPERIMENT)
            with mlflow.start_run():
                mlflow.log_params(params)
                for step in range(1, epochs + 1):
                    mlflow.log_metrics({f"m{i}": step * 0.1 + i for i in range(5)}, step=step)
        else:
            with tracking.start_run(EXPERIMENT, run_name=f"w{os.getpid()}"):
                tracking.log_params({"p": params})
                for step in range(1, epochs + 1):
                    tracking.log_epoch(
                        {"epoch": step, **{f"m{i}": step * 0.1 + i for i in range(5)}}
                    )
        results.put("ok")
    except Exception as error:
        results.put(f"{type(error).__name__}: {str(error).splitlines()[0][:120]}")


def measure(way: str, writers: int, epochs: int, existing: bool) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="contention-"))
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    if existing:  # the store's tables made beforehand; the experiment still new
        import mlflow

        mlflow.MlflowClient(uri).search_experiments()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start = time.time() + 8  # imports take a few seconds on a busy machine
    processes = [
        context.Process(target=_writer, args=(way, uri, epochs, start, results))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    outcomes = collections.Counter(results.get() for _ in processes)
    for process in processes:
        process.join()
    wall = time.time() - start

    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    finished = 0
    if experiment is not None:
        runs = client.search_runs([experiment.experiment_id])
        finished = sum(r.info.status == "FINISHED" for r in runs)
    return {
        "way": way,
        "writers": writers,
        "store": "existing" if existing else "fresh",
        "outcomes": dict(outcomes),
        "finished_in_experiment": finished,
        "runs_in_default": len(client.search_runs(["0"])),  # where set_experiment's losers go
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--way", choices=["plain", "charmt"], nargs="+", default=["plain", "charmt"]
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--existing", action="store_true", help="create the store's tables before the writers start"
    )
    args = parser.parse_args()
    for writers in args.writers:
        for way in args.way:
            for _ in range(args.repeat):
                print(measure(way, writers, args.epochs, args.existing), flush=True)


if __name__ == "__main__":
    sys.exit(main())
