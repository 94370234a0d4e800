"""The ``charmt`` command: translate English sentences with a trained model.

charmt translate "Go." "I'm sorry."          # one translation a line
echo "Go." | charmt translate                 # sentences from standard input, one a line
charmt translate --model models:/m-... "Go."  # an MLflow model instead of models/
charmt translate --beam-width 5 "Go."         # beam search instead of greedy decoding
charmt log-training                           # log a training saved while the server was away
charmt ui                                     # the MLflow UI, opened on the runs table

Standard error carries charmt's own messages only (a refused input, characters never seen in
training, an error): TensorFlow's start-up log and other libraries' warnings are shown with
--verbose.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from charmt.cli import console
from charmt.errors import CharmtError, exit_on_error

MLFLOW_SCHEMES = ("models:/", "runs:/")


def load_translate_function(model: str, beam_width: int = 1) -> Callable[[list[str]], list[str]]:
    """A function from English sentences to French ones, for a ``models/`` dir or an MLflow URI;
    greedy with ``beam_width`` 1, else beam search of that width."""
    if model.startswith(MLFLOW_SCHEMES) or "://" in model:
        import mlflow.pyfunc

        from charmt import tracking

        tracking.configure()
        loaded = mlflow.pyfunc.load_model(model)
        params = {"beam_width": beam_width} if beam_width != 1 else None

        def predict(sentences: list[str]) -> list[str]:
            try:
                return list(loaded.predict(sentences, params=params))
            except mlflow.exceptions.MlflowException as error:  # a refused input: say why
                raise CharmtError(f"{model}: {' '.join(error.message.split())}") from None

        return predict
    from charmt.inference.translator import Translator

    translator = Translator.load(model)
    translator.decoder(beam_width)  # a bad width fails before any input is read
    return lambda sentences: translator.translate(sentences, beam_width=beam_width)


def _batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(lines)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def translate(args: argparse.Namespace) -> None:
    translate_batch = load_translate_function(args.model, args.beam_width)
    if args.sentences:
        batches: Iterable[list[str]] = [args.sentences]
    else:
        batches = _batches((line.rstrip("\r\n") for line in sys.stdin), args.batch_size)
    for batch in batches:
        for translation in translate_batch(batch):
            print(translation)
        sys.stdout.flush()


def log_training(args: argparse.Namespace) -> None:
    from charmt import tracking
    from charmt.serving.publish import log_saved_training

    run_id = log_saved_training(args.model, args.history, args.metrics)
    print(f"logged {args.model} to MLflow run {run_id} in {tracking.tracking_uri()}")


def ui(args: argparse.Namespace) -> None:
    from charmt.cli.ui import run_ui

    run_ui(port=args.port, experiment=args.experiment, open_browser=not args.no_browser)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="charmt", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    translate_parser = commands.add_parser(
        "translate", help="translate English sentences (arguments, or stdin one a line)"
    )
    translate_parser.add_argument("sentences", nargs="*", help="default: read standard input")
    translate_parser.add_argument(
        "--model",
        default="models",
        help="the pipeline's models/ directory (default) or an MLflow model URI "
        "(models:/..., runs:/<run id>/translator)",
    )
    translate_parser.add_argument(
        "--batch-size", type=int, default=256, help="sentences from stdin translated together"
    )
    translate_parser.add_argument(
        "--beam-width",
        type=int,
        default=1,
        help="1 (default): greedy decoding; N > 1: beam search keeping N hypotheses",
    )
    translate_parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show TensorFlow's and other libraries' own log lines and warnings",
    )
    log_parser = commands.add_parser(
        "log-training",
        help="log a training the train stage saved while the MLflow server was away",
    )
    log_parser.add_argument("--model", type=Path, default=Path("models"))
    log_parser.add_argument("--history", type=Path, default=Path("metrics/history.csv"))
    log_parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"))
    ui_parser = commands.add_parser(
        "ui",
        help="start the MLflow UI over the pipeline's store and print the link to its runs table",
    )
    ui_parser.add_argument(
        "--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000; 0: any free one)"
    )
    ui_parser.add_argument(
        "--experiment",
        default=None,
        help="experiment to open (default: tracking.experiment_name in params.yaml, else charmt)",
    )
    ui_parser.add_argument(
        "--no-browser", action="store_true", help="print the link only; do not open a browser"
    )
    args = parser.parse_args(argv)
    console.log_to_stderr()
    command = {"translate": translate, "log-training": log_training, "ui": ui}[args.command]
    quiet = args.command == "translate" and not args.verbose
    with console.only_charmt_on_stderr() if quiet else contextlib.nullcontext():
        exit_on_error(lambda: command(args))


if __name__ == "__main__":
    main()
