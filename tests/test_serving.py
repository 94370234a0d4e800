"""The served translator refuses bad requests with a 4xx and a clear message, and keeps serving.

One real `mlflow models serve` of a logged translator; the table sends each bad request, checks
the status code and the message, and checks that the server still answers a good request.
"""

from __future__ import annotations

import json

import pytest

from bench.servers import post, served
from charmt import tracking
from charmt.pyfunc import MAX_CHARACTERS, MAX_SENTENCES, check_request

GOOD = ["abc", "hgfe"]

# (what is wrong, body, content type, words of the message)
BAD_REQUESTS = [
    ("not JSON", b'{"inputs": ["abc"', "application/json", "json"),
    ("wrong field", json.dumps({"sentences": GOOD}).encode(), "application/json", "inputs"),
    ("not a list", json.dumps({"inputs": {"a": 1}}).encode(), "application/json", "list"),
    ("non-string items", json.dumps({"inputs": ["abc", 3]}).encode(), "application/json", "str"),
    ("empty list", json.dumps({"inputs": []}).encode(), "application/json", "no sentences"),
    (
        "100,000-character sentence",
        json.dumps({"inputs": ["ab" * 50_000]}).encode(),
        "application/json",
        f"at most {MAX_CHARACTERS}",
    ),
    (
        "100,000 sentences",
        json.dumps({"inputs": ["abc"] * 100_000}).encode(),
        "application/json",
        f"at most {MAX_SENTENCES}",
    ),
    (
        "control characters",
        json.dumps({"inputs": ["ab\tc", "d\x00e"]}).encode(),
        "application/json",
        "control characters",
    ),
    (
        "characters never seen in training",
        json.dumps({"inputs": ["abc", "xyz?"]}).encode(),
        "application/json",
        "never seen in training",
    ),
    ("wrong content type", b"abc", "text/plain", "content type"),
]


def test_check_request_accepts_a_good_request_as_is():
    assert check_request(["ab", ""], set("ab")) == ["ab", ""]


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """The translator logged to a store of this module's own, served by MLflow."""
    directory = tmp_path_factory.mktemp("serving")
    store = f"sqlite:///{directory / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        with tracking.start_run("charmt-serving") as run:
            tracking.log_trained_model(trained.translator, trained.model_dir)
        from conftest import subprocess_env

        env = subprocess_env(MLFLOW_TRACKING_URI=store)
        with served(f"runs:/{run.info.run_id}/translator", directory / "serve.log", env) as up:
            yield up


def _translate(server, sentences):
    return post(f"{server.url}/invocations", json.dumps({"inputs": sentences}).encode())


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "body", "content_type", "words"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_request_gets_a_4xx_and_the_server_keeps_serving(
    server, trained, case, body, content_type, words
):
    status, text = post(f"{server.url}/invocations", body, content_type)
    assert 400 <= status < 500, f"{case}: {status} {text[:500]}"
    assert words.lower() in text.lower(), f"{case}: {text[:500]}"
    assert server.alive()
    status, text = _translate(server, GOOD)
    assert status == 200, text[:500]
    assert json.loads(text) == {"predictions": trained.translator.translate(GOOD)}
