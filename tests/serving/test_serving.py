"""The served translator refuses bad requests with a 4xx and a clear message, and keeps serving.

One real `mlflow models serve` of a logged translator; the tables send each bad request, check
the status code and the message, and check that the server still answers a good request.

Two tables, by who refuses. MLflow's scoring server parses the body and enforces the model's
``list[str]`` type hint before ``predict`` runs, so a body that is not JSON, has no ``inputs``,
is not a list or holds a non-string is refused by MLflow, in MLflow's words, and
``charmt.serving.pyfunc.check_request`` never sees it (its own checks for those are tested directly
below). Everything else a client can get wrong is refused by charmt's checks: those rows expect
their own text, which MLflow never writes; without the checks the server would answer 200.
"""

from __future__ import annotations

import json

import pytest
from mlflow.exceptions import MlflowException

from bench.servers import post, served
from charmt.serving.pyfunc import (
    MAX_BEAM_WIDTH,
    MAX_CHARACTERS,
    MAX_SENTENCES,
    check_beam_width,
    check_request,
)

GOOD = ["abc", "hgfe"]
JSON = "application/json"
KNOWN = set("abcdefgh")  # the training alphabet of the ``trained`` fixture (conftest.py)

# Refused by MLflow before the model runs: (what is wrong, body, content type, MLflow's message).
MLFLOW_REFUSALS = [
    ("not JSON", b'{"inputs": ["abc"', JSON, "json"),
    ("wrong field", json.dumps({"sentences": GOOD}).encode(), JSON, "inputs"),
    ("not a list", json.dumps({"inputs": {"a": 1}}).encode(), JSON, "Expected list, but got dict"),
    (
        "non-string items",
        json.dumps({"inputs": ["abc", 3]}).encode(),
        JSON,
        "Failed to validate data against type hint `list[str]`",
    ),
    ("wrong content type", b"abc", "text/plain", "content type"),
]

# Refused by check_request (and check_beam_width): (what is wrong, inputs, params, their text).
CHARMT_REFUSALS = [
    ("empty list", [], None, "no sentences to translate"),
    (
        "100,000-character sentence",
        ["ab" * 50_000],
        None,
        f"sentence 0 has 100000 characters; at most {MAX_CHARACTERS} are accepted",
    ),
    (
        "100,000 sentences",
        ["abc"] * 100_000,
        None,
        f"100000 sentences in one request; at most {MAX_SENTENCES} are accepted",
    ),
    (
        "control characters",
        ["ab\tc", "d\x00e"],
        None,
        "sentence 0 contains control characters (U+0009); send one sentence per item",
    ),
    (
        "characters never seen in training",
        ["abc", "xyz?"],
        None,
        "sentence 1 contains characters never seen in training: '?xyz'",
    ),
    (
        "beam width 0",
        GOOD,
        {"beam_width": 0},
        f"beam_width = 0; must be an integer from 1 (greedy) to {MAX_BEAM_WIDTH}",
    ),
]
# charmt's words for what MLflow refuses first: never in MLflow's answers.
CHARMT_TYPE_REFUSALS = [
    ({"a": 1}, "expected a list of strings, got dict"),
    (["abc", 3], "sentence 1 is int 3; every item must be a string"),
]


def test_check_request_accepts_a_good_request_as_is():
    assert check_request(["ab", ""], set("ab")) == ["ab", ""]


@pytest.mark.parametrize(
    ("case", "inputs", "params", "text"), CHARMT_REFUSALS, ids=[r[0] for r in CHARMT_REFUSALS]
)
def test_each_charmt_refusal_is_the_text_of_charmts_own_checks(case, inputs, params, text):
    with pytest.raises(MlflowException) as refused:
        check_beam_width((params or {}).get("beam_width", 1))
        check_request(inputs, KNOWN)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert text in refused.value.message


@pytest.mark.parametrize(("inputs", "text"), CHARMT_TYPE_REFUSALS)
def test_check_request_refuses_what_mlflow_refuses_first_when_called_directly(inputs, text):
    with pytest.raises(MlflowException) as refused:
        check_request(inputs, KNOWN)
    assert text in refused.value.message


@pytest.fixture(scope="module")
def server(logged, tmp_path_factory):
    """The session's logged translator (conftest.logged) served by ``mlflow models serve``."""
    from commands import subprocess_env

    log = tmp_path_factory.mktemp("serving") / "serve.log"
    env = subprocess_env(MLFLOW_TRACKING_URI=logged.store)
    with served(logged.translator_uri, log, env) as up:
        yield up


def _translate(server, sentences):
    return post(f"{server.url}/invocations", json.dumps({"inputs": sentences}).encode())


@pytest.mark.e2e
def test_the_served_translator_answers_as_the_trained_one(server, trained):
    sources = [p.source for p in trained.held_out[:4]]
    status, text = _translate(server, sources)
    assert status == 200, text[:500]
    assert json.loads(text) == {"predictions": trained.translator.translate(sources)}


def _assert_still_serving(server, trained):
    assert server.alive()
    status, text = _translate(server, GOOD)
    assert status == 200, text[:500]
    assert json.loads(text) == {"predictions": trained.translator.translate(GOOD)}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "body", "content_type", "text"), MLFLOW_REFUSALS, ids=[r[0] for r in MLFLOW_REFUSALS]
)
def test_mlflow_refuses_a_malformed_request_before_the_model_and_keeps_serving(
    server, trained, case, body, content_type, text
):
    status, answer = post(f"{server.url}/invocations", body, content_type)
    assert 400 <= status < 500, f"{case}: {status} {answer[:500]}"
    assert text.lower() in answer.lower(), f"{case}: {answer[:500]}"
    for _, charmt_text in CHARMT_TYPE_REFUSALS:  # MLflow's words: check_request never ran
        assert charmt_text.split(";")[0] not in answer, answer[:500]
    _assert_still_serving(server, trained)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "inputs", "params", "text"), CHARMT_REFUSALS, ids=[r[0] for r in CHARMT_REFUSALS]
)
def test_charmts_checks_refuse_a_bad_request_through_the_server_and_it_keeps_serving(
    server, trained, case, inputs, params, text
):
    body = {"inputs": inputs, **({"params": params} if params else {})}
    status, answer = post(f"{server.url}/invocations", json.dumps(body).encode())
    assert status == 400, f"{case}: {status} {answer[:500]}"
    refusal = json.loads(answer)
    assert refusal["error_code"] == "INVALID_PARAMETER_VALUE", answer[:500]
    assert text in refusal["message"], f"{case}: {answer[:500]}"
    _assert_still_serving(server, trained)
