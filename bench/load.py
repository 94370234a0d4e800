"""Load test: the ``translator`` pyfunc behind a real ``mlflow models serve``, on 127.0.0.1 only.

    python bench/load.py                                  # tiny model, 4 clients x 500 requests
    python bench/load.py --clients 4 --requests 100       # a quick look
    python bench/load.py --model models --sentences data/prepared/test.tsv   # the pipeline's model
    CHARMT_LOAD_USER=app CHARMT_LOAD_PASSWORD=... python bench/load.py \
        --url https://127.0.0.1:8443 --ca ca.pem --sentences data/prepared/test.tsv   # a proxy

Trains a tiny model (or takes a ``models/`` directory), logs the translator pyfunc to a store of
its own under bench/work/load/, serves it with ``--env-manager local``, and has N concurrent
clients send M requests each of 1-64 sentences (bounded by --max-seconds as well). Reports
requests/s, sentences/s, p50/p99 latency, errors, and the server's resident memory (its whole
process tree) after warm-up and at the end. Then sends the bad-request table and checks that the
server answers a good request after each. Not a unit test: the clients share the CPU with the
server, and on a shared machine the figures are only indicative; say how you ran it.
With ``--url`` it starts no server: it loads an endpoint already served (behind nginx, say),
with basic auth from ``CHARMT_LOAD_USER``/``CHARMT_LOAD_PASSWORD`` and ``--ca`` for a private
CA; ``--sentences`` (or ``--model``, for its alphabet) gives what to send; no memory figures.
Results: bench/results/load.json and load.md (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import json
import os
import random
import ssl
import statistics
import sys
import time
from pathlib import Path

# Run as `python bench/load.py`: the project root on the path, for bench.servers and bench.harness.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RESULTS, cpu_name, write_results
from bench.harness import WORK as BENCH_WORK

WORK = BENCH_WORK / "load"


def tiny_model(directory: Path) -> Path:
    """A small model trained on reversed words over 'abcdefgh' (the tests' task), in seconds."""
    from charmt.data.pairs import Pair, build_vocabularies
    from charmt.inference.translator import Translator
    from charmt.training.fit import TrainParams, train_model

    rng = random.Random(1)
    words: set[str] = set()
    while len(words) < 900:
        words.add("".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 7))))
    pairs = [Pair(w, w[::-1]) for w in sorted(words)]
    rng.shuffle(pairs)
    train, validation = pairs[100:], pairs[:100]
    vocabularies = build_vocabularies(train)
    params = TrainParams(latent_dim=64, batch_size=32, epochs=10, learning_rate=0.005, seed=3)
    result = train_model(train, validation, vocabularies, params, verbose=0)
    Translator.from_training(result.model, vocabularies, train).save(directory)
    return directory


def sentence_pool(model_dir: Path | None, sentences_file: Path | None) -> list[str]:
    """Sentences the model accepts: the file's first column, or random words of its alphabet.

    Without ``model_dir`` (a served endpoint) the file's sentences, unchecked."""
    if model_dir is None:
        if sentences_file is None:
            sys.exit("--url needs --sentences (or --model, for the model's alphabet)")
        lines = sentences_file.read_text(encoding="utf-8").splitlines()
        pool = [line.split("\t")[0] for line in lines if line.split("\t")[0]]
        if not pool:
            sys.exit(f"no sentences in {sentences_file}")
        return pool
    from charmt.inference.translator import Translator

    translator = Translator.load(model_dir)
    known = set(translator.vocabularies.source.chars)
    if sentences_file is not None:
        lines = sentences_file.read_text(encoding="utf-8").splitlines()
        pool = [line.split("\t")[0] for line in lines]
        pool = [s for s in pool if s and set(s) <= known]
        if pool:
            return pool
    letters = sorted(c for c in known if c.isalnum()) or sorted(known)
    rng = random.Random(0)
    longest = translator.max_source_length
    return [
        "".join(rng.choice(letters) for _ in range(rng.randint(1, longest))) for _ in range(2000)
    ]


def bad_requests(good: list[str]) -> list[tuple[str, bytes, str]]:
    """(what is wrong, body, content type): each must get a 4xx, the server must keep serving."""
    from charmt.serving.pyfunc import MAX_CHARACTERS, MAX_SENTENCES

    def body(value: object) -> bytes:
        return json.dumps(value).encode()

    json_type = "application/json"
    word = good[0]
    return [
        ("not JSON", b'{"inputs": ["' + word.encode() + b'"', json_type),
        ("wrong field (`sentences`)", body({"sentences": good}), json_type),
        ("`inputs` not a list", body({"inputs": {"a": 1}}), json_type),
        ("non-string items", body({"inputs": [word, 3, None]}), json_type),
        ("empty list", body({"inputs": []}), json_type),
        ("100,000-character sentence", body({"inputs": [word[0] * 100_000]}), json_type),
        ("100,000 sentences", body({"inputs": [word] * 100_000}), json_type),
        ("control characters (tab, NUL)", body({"inputs": ["a\tb", "c\x00"]}), json_type),
        ("characters never seen in training", body({"inputs": ["\u00a7\u2603"]}), json_type),
        ("text/plain body", word.encode(), "text/plain"),
        (
            f"{MAX_SENTENCES} sentences (the limit)",
            body({"inputs": [word] * MAX_SENTENCES}),
            json_type,
        ),
        (
            f"{MAX_CHARACTERS} characters (the limit)",
            body({"inputs": [word[0] * MAX_CHARACTERS]}),
            json_type,
        ),
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def load(
    url: str, pool: list[str], clients: int, requests: int, max_seconds: float, **options
) -> dict:
    """``clients`` threads, each sending up to ``requests`` requests of 1-64 sentences;
    ``options`` go to :func:`bench.servers.post` (headers, an SSL context)."""
    from bench.servers import post

    deadline = time.monotonic() + max_seconds

    def client(number: int) -> list[tuple[float, int, int]]:
        rng = random.Random(number)
        done = []
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            batch = [rng.choice(pool) for _ in range(rng.randint(1, 64))]
            start = time.perf_counter()
            try:
                status, text = post(
                    url, json.dumps({"inputs": batch}).encode(), timeout=60, **options
                )
                ok = status == 200 and len(json.loads(text)["predictions"]) == len(batch)
            except Exception:  # a dropped connection is an error to count, not a crash
                ok = False
            done.append((time.perf_counter() - start, len(batch), int(not ok)))
        return done

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as executor:
        results = [r for rs in executor.map(client, range(clients)) for r in rs]
    elapsed = time.perf_counter() - start
    latencies = [r[0] * 1000 for r in results]
    return {
        "requests": len(results),
        "sentences": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(results) / elapsed, 1),
        "sentences_per_second": round(sum(r[1] for r in results) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "stopped_by_time_limit": time.monotonic() > deadline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a models/ dir (default: train a tiny one)")
    parser.add_argument("--sentences", type=Path, help="TSV or text: sentences to send (column 1)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=500, help="per client")
    parser.add_argument("--max-seconds", type=float, default=600, help="bound on the load phase")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    parser.add_argument(
        "--url",
        help="an endpoint already served (base URL, or .../invocations): start no server; "
        "basic auth from CHARMT_LOAD_USER and CHARMT_LOAD_PASSWORD",
    )
    parser.add_argument("--ca", type=Path, help="CA certificate that verifies --url's TLS")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.url:
        run_against(args, args.url)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{WORK / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = store

    from bench.servers import served
    from charmt import tracking
    from charmt.inference.translator import Translator
    from charmt.serving.publish import log_trained_model

    model_dir = args.model or tiny_model(WORK / f"models-{os.getpid()}")
    pool = sentence_pool(model_dir, args.sentences)
    with tracking.start_run("charmt-load-test") as run:
        log_trained_model(Translator.load(model_dir), model_dir)
    uri = f"runs:/{run.info.run_id}/translator"
    with served(uri, WORK / "serve.log") as server:
        run_against(args, server.url, pool, server)


def post_options(args: argparse.Namespace) -> dict:
    """Basic auth from CHARMT_LOAD_USER/CHARMT_LOAD_PASSWORD and the --ca context, for post."""
    options: dict = {}
    user = os.environ.get("CHARMT_LOAD_USER")
    if user:
        token = f"{user}:{os.environ.get('CHARMT_LOAD_PASSWORD', '')}".encode()
        options["headers"] = {"Authorization": "Basic " + base64.b64encode(token).decode()}
    if args.ca:
        options["context"] = ssl.create_default_context(cafile=str(args.ca))
    return options


def run_against(args: argparse.Namespace, url: str, pool: list[str] | None = None, server=None):
    """The load, then the bad-request table, against ``url``; ``server`` when started here
    (its memory is measured). Writes the results and exits 1 on any error."""
    from bench.servers import post, process_tree_rss_mib

    if pool is None:
        pool = sentence_pool(args.model, args.sentences)
    options = post_options(args) if server is None else {}

    def rss() -> float | None:
        return None if server is None else round(process_tree_rss_mib(server.process.pid), 1)

    report: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs",
        "model": str(args.model or "tiny reversal model (latent 64)")
        if server is not None
        else f"served at {url}",
        "clients": args.clients,
        "requests_per_client": args.requests,
    }
    invocations = url if url.endswith("/invocations") else f"{url.rstrip('/')}/invocations"
    for _ in range(3):  # warm-up: the first calls trace the decoding loop
        post(invocations, json.dumps({"inputs": pool[:64]}).encode(), **options)
    report["rss_mib_start"] = rss()
    report["load"] = load(
        invocations, pool, args.clients, args.requests, args.max_seconds, **options
    )
    report["rss_mib_end"] = rss()

    table = []
    for case, body, content_type in bad_requests(pool[:2]):
        status, text = post(invocations, body, content_type, **options)
        try:
            message = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            message = text
        # MLflow prefixes the model's message with "Failed to predict data '<the input>'".
        message = str(message).split("Error: ", 1)[-1]
        good_status, _ = post(invocations, json.dumps({"inputs": pool[:2]}).encode(), **options)
        table.append(
            {
                "request": case,
                "status": status,
                "message": " ".join(str(message).split())[:160],
                "kept_serving": (server is None or server.alive()) and good_status == 200,
            }
        )
    report["bad_requests"] = table
    report["rss_mib_after_bad_requests"] = rss()

    write_results(args.out, report, markdown(report))
    print(markdown(report))
    bad = [row for row in table if not row["kept_serving"]]
    sys.exit(1 if report["load"]["errors"] or bad else 0)


def markdown(report: dict) -> str:
    load_figures = report["load"]
    report = {k: "n/a" if v is None else v for k, v in report.items()}  # RSS of a remote server
    lines = [
        f"Load test, {report['date']}, {report['machine']}; model: {report['model']}.",
        f"{report['clients']} clients x {report['requests_per_client']} requests of 1-64 "
        "sentences, client and server on the same machine.",
        "",
        "| requests | sentences | errors | seconds | requests/s | sentences/s | p50 ms | p99 ms "
        "| RSS start MiB | RSS end MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {load_figures['requests']} | {load_figures['sentences']} | {load_figures['errors']} "
        f"| {load_figures['seconds']} | {load_figures['requests_per_second']} "
        f"| {load_figures['sentences_per_second']} | {load_figures['p50_ms']} "
        f"| {load_figures['p99_ms']} | {report['rss_mib_start']} | {report['rss_mib_end']} |",
        "",
        f"Server RSS after the bad requests below: {report['rss_mib_after_bad_requests']} MiB.",
        "",
        "| request | status | message (start) | server kept serving |",
        "|---|---|---|---|",
    ]
    for row in report["bad_requests"]:
        message = row["message"].replace("|", "\\|")[:120]
        lines.append(
            f"| {row['request']} | {row['status']} | {message} "
            f"| {'yes' if row['kept_serving'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
