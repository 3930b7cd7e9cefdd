"""Hostile input against every FHIR interaction, on both backends (FHIR R4 §3.1 RESTful API).

Hypothesis throws malformed JSON, random bytes, wrong JSON types, multi-megabyte
strings, deep nesting, bad ids, types and versions and garbage headers at create,
update, patch (JSON Patch and FHIRPath Patch), read, vread, history and delete.
Whatever comes in, the answer has an expected status (never 500); every 4xx is a JSON
OperationOutcome that does not echo the caller's input; and the resources stored
before the fuzzing are unchanged after it. Writes aimed at those resources always
carry a stale ``If-Match``, so that nothing but the server's checks stands between
the fuzz and the data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from fuzz_strategies import (
    _M,
    FHIR_JSON,
    JSON_PATCH,
    KNOWN_BODIES,
    LIMIT,
    MARKER,
    REQUEST_ID,
    SNAPSHOT_URLS,
    Call,
    creates,
    deletes,
    dump,
    patches,
    reads,
    stale_writes,
    updates,
)
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

if TYPE_CHECKING:
    from httpx2 import Response  # what Starlette's TestClient answers with


def fuzz(examples: int) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,  # nothing written to the working tree
        # The store is meant to live across examples; some bodies are megabytes.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# What each interaction may answer.
CREATE = frozenset({201, 400, 404, 405, 406, 413, 415})
UPDATE = frozenset({200, 201, 400, 404, 405, 406, 409, 412, 413, 415})
PATCH = frozenset({200, 400, 404, 405, 406, 409, 410, 412, 413, 415, 422})
READ = frozenset({200, 304, 400, 404, 405, 406, 410, 415})
DELETE = frozenset({204, 400, 404, 405, 406, 412, 415})
REFUSED = frozenset({400, 406, 410, 412, 413, 415})  # a write with a stale If-Match


@dataclass(repr=False)  # a failing example prints its arguments: keep this one short
class Known:
    client: TestClient
    snapshot: dict[str, tuple[int, str | None, bytes]]

    def current(self) -> dict[str, tuple[int, str | None, bytes]]:
        return {url: _observe(self.client, url) for url in SNAPSHOT_URLS}

    def assert_unchanged(self) -> None:
        changed = [url for url, seen in self.current().items() if seen != self.snapshot[url]]
        assert not changed, f"fuzzing changed stored data: {changed}"
        assert self.client.get("/healthz").status_code == 200


def _observe(client: TestClient, url: str) -> tuple[int, str | None, bytes]:
    answer = client.get(url)
    return answer.status_code, answer.headers.get("etag"), answer.content


@pytest.fixture
def known(client: TestClient) -> Known:
    json_headers = {"content-type": FHIR_JSON}
    for path, body in KNOWN_BODIES.items():
        assert client.put(f"/fhir/{path}", content=body, headers=json_headers).status_code == 201
    second = KNOWN_BODIES["Patient/known-v2"].replace(b"true", b"false")
    assert client.put("/fhir/Patient/known-v2", content=second, headers=json_headers).is_success
    assert client.delete("/fhir/Patient/known-gone").status_code == 204
    return Known(client, {url: _observe(client, url) for url in SNAPSHOT_URLS})


# --- Calls and checks ---------------------------------------------------------------


def check(answer: Response, allowed: frozenset[int]) -> None:
    where = f"{answer.request.method} {answer.request.url}"
    if answer.request.headers.get("host") != "127.0.0.1":
        # The token's audience is the base under 127.0.0.1: another Host is another server.
        allowed = allowed | {401}
    assert answer.status_code in allowed, f"{where} -> {answer.status_code}: {answer.text[:500]}"
    _check_request_id(answer, where)
    if 400 <= answer.status_code < 500:
        assert answer.headers.get("content-type", "").startswith(FHIR_JSON), where
        outcome = answer.json()
        assert outcome.get("resourceType") == "OperationOutcome" and outcome.get("issue"), where
        headers = [value for name, value in answer.headers.items() if name != "x-request-id"]
        seen = (answer.text + repr(headers)).lower()
        assert MARKER.lower() not in seen, f"{where} echoes the input: {answer.text[:500]}"


def _check_request_id(answer: Response, where: str) -> None:
    # A well-formed X-Request-Id is echoed on purpose (correlation); anything else is replaced.
    sent = answer.request.headers.get("x-request-id")
    if sent is None or REQUEST_ID.fullmatch(sent) is None:
        assert answer.headers["x-request-id"] != sent, where
        assert REQUEST_ID.fullmatch(answer.headers["x-request-id"]), where


# --- The fuzz -----------------------------------------------------------------------


@fuzz(200)
@given(call=creates())
def test_create_answers_hostile_input_cleanly(client: TestClient, known: Known, call: Call) -> None:
    check(call.send(client), CREATE)
    known.assert_unchanged()


@fuzz(200)
@given(call=updates())
def test_update_answers_hostile_input_cleanly(client: TestClient, known: Known, call: Call) -> None:
    check(call.send(client), UPDATE)
    known.assert_unchanged()


@fuzz(200)
@given(call=patches())
def test_patch_answers_hostile_input_cleanly(client: TestClient, known: Known, call: Call) -> None:
    check(call.send(client), PATCH)
    known.assert_unchanged()


@fuzz(100)
@given(call=deletes())
def test_delete_with_bad_ids_answers_cleanly(client: TestClient, known: Known, call: Call) -> None:
    check(call.send(client), DELETE)
    known.assert_unchanged()


@fuzz(100)
@given(call=stale_writes())
def test_stale_writes_never_touch_stored_resources(
    client: TestClient, known: Known, call: Call
) -> None:
    check(call.send(client), REFUSED)
    known.assert_unchanged()


@fuzz(200)
@given(call=reads())
@example(call=Call("GET", "Patient/known-patient/_history/\u00b2"))
@example(call=Call("GET", "Patient/_history", params=[("_count", "\u00b2")]))
@example(call=Call("GET", "_history", params=[("_count", "1")] * 201))
def test_reads_answer_hostile_input_cleanly(client: TestClient, known: Known, call: Call) -> None:
    check(call.send(client), READ)
    known.assert_unchanged()


# --- Size and depth -----------------------------------------------------------------

SIZED = {  # where a huge string goes, per method: path, content type, body around it
    "POST": ("Patient", FHIR_JSON, b'{"resourceType":"Patient","name":[{"family":"', b'"}]}'),
    "PUT": ("Patient/fuzz-big", FHIR_JSON,
            b'{"resourceType":"Patient","id":"fuzz-big","name":[{"family":"', b'"}]}'),
    "PATCH": ("Patient/fuzz-patch", JSON_PATCH,
              b'[{"op":"replace","path":"/name/0/family","value":"', b'"}]'),
}  # fmt: skip


def sized(method: str, size: int, char: str, chunked: bool) -> tuple[Call, int]:
    """A call whose body is about ``size`` bytes: at least that above the limit, at most below."""
    path, content_type, head, tail = SIZED[method]
    unit = char.encode()
    count = (size - len(head) - len(tail)) / len(unit)
    body = head + unit * (math.ceil(count) if size > LIMIT else math.floor(count)) + tail
    content = [body[i : i + 65536] for i in range(0, len(body), 65536)] if chunked else body
    return Call(method, path, content, {"content-type": content_type.encode()}), len(body)


@fuzz(16)
@given(
    method=st.sampled_from(sorted(SIZED)),
    size=st.sampled_from([1 << 20, 3 << 20, LIMIT - 64, LIMIT + 1, 5 << 20]),
    char=st.sampled_from(["a", "é", MARKER]),
    chunked=st.booleans(),
)
@example(method="PUT", size=LIMIT + 1, char=MARKER, chunked=False)
@example(method="POST", size=5 << 20, char="a", chunked=True)
def test_bodies_over_the_limit_get_413(
    client: TestClient, known: Known, method: str, size: int, char: str, chunked: bool
) -> None:
    call, length = sized(method, size, char, chunked)
    check(
        call.send(client), frozenset({413}) if length > LIMIT else frozenset({200, 201, 400, 422})
    )
    known.assert_unchanged()


def nested(shape: str, depth: int) -> bytes:
    """A JSON value ``depth`` levels deep, built without recursion."""
    leaf = b'{"url":"http://x","valueString":"' + _M + b'"}'
    opening, middle, closing = {
        "array": (b"[", b"", b"]"),
        "object": (b'{"a":', b"1", b"}"),
        "extension": (b'[{"url":"http://x","extension":', b"[" + leaf + b"]", b"}]"),
        "part": (b'[{"name":"a","part":', b'[{"name":"b","valueString":"x"}]', b"}]"),
    }[shape]
    return opening * depth + middle + closing * depth


def deep(target: str, value: bytes) -> Call:
    if target == "JSON Patch":
        body = b'[{"op":"add","path":"/extension","value":' + value + b"}]"
        return Call("PATCH", "Patient/fuzz-patch", body, {"content-type": JSON_PATCH.encode()})
    json_headers = {"content-type": FHIR_JSON.encode()}
    if target == "FHIRPath Patch":
        body = (
            b'{"resourceType":"Parameters","parameter":[{"name":"operation","part":['
            b'{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},'
            b'{"name":"name","valueString":"contact"},{"name":"value","part":' + value + b"}]}]}"
        )
        return Call("PATCH", "Patient/fuzz-patch", body, json_headers)
    body = b'{"resourceType":"Patient","id":"fuzz-deep","extension":' + value + b"}"
    return Call(target, "Patient" if target == "POST" else "Patient/fuzz-deep", body, json_headers)


@fuzz(60)
@given(
    depth=st.sampled_from([1, 64, 127, 128, 129, 500, 1000, 1024, 1025, 5000, 100_000]),
    shape=st.sampled_from(["array", "object", "extension", "part"]),
    target=st.sampled_from(["POST", "PUT", "JSON Patch", "FHIRPath Patch"]),
)
def test_deep_nesting_is_refused_cleanly(
    client: TestClient, known: Known, depth: int, shape: str, target: str
) -> None:
    check(deep(target, nested(shape, depth)).send(client), frozenset({200, 201, 400, 413, 422}))
    known.assert_unchanged()


# --- Echoes and decimals, targeted ----------------------------------------------------

ECHO_CASES: dict[str, dict[str, Any]] = {
    "unknown element name": {"resourceType": "Patient", MARKER: True},
    "unknown key in a primitive's extension": {"resourceType": "Patient", "_gender": {MARKER: 1}},
    "contained resource type": {"resourceType": "Patient", "contained": [{"resourceType": MARKER}]},
    "bundle entry resource type": {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": MARKER}}],
    },
}


@pytest.mark.parametrize("case", sorted(ECHO_CASES))
def test_validation_errors_do_not_echo_the_input(client: TestClient, case: str) -> None:
    resource = {**ECHO_CASES[case], "id": "fuzz-echo"}
    type_ = resource["resourceType"]
    for call in (
        Call("PUT", f"{type_}/fuzz-echo", dump(resource)),
        Call("POST", type_, dump(resource)),
    ):
        check(call.send(client), frozenset({400}))


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (JSON_PATCH, [{"op": "add", "path": f"/{MARKER}", "value": True}]),
        (FHIR_JSON, {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
            {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": MARKER}, {"name": "value", "valueBoolean": True},
        ]}]}),
    ],
    ids=["JSON Patch", "FHIRPath Patch"],
)  # fmt: skip
def test_patch_errors_do_not_echo_the_input(
    client: TestClient, known: Known, content_type: str, body: Any
) -> None:
    headers = {"content-type": content_type.encode()}
    check(Call("PATCH", "Patient/fuzz-patch", dump(body), headers).send(client), frozenset({422}))
    known.assert_unchanged()


def test_validation_errors_do_not_echo_numbers(client: TestClient) -> None:
    number = "987654321987654321"
    body = f'{{"resourceType":"Patient","multipleBirthInteger":{number}}}'.encode()
    answer = Call("POST", "Patient", body).send(client)
    check(answer, frozenset({400}))
    assert number not in answer.text, f"the error echoes the input: {answer.text}"


PLAIN_DECIMALS = st.from_regex(r"-?(0|[1-9][0-9]{0,17})\.[0-9]{1,18}", fullmatch=True)
EXPONENTS = st.from_regex(
    r"-?(0|[1-9][0-9]{0,5})(\.[0-9]{1,6})?[eE][+-]?[0-9]{1,3}", fullmatch=True
)
DECIMAL_BODY = (
    '{{"resourceType":"Observation","id":"fuzz-decimal","status":"final",'
    '"code":{{"text":"x"}},"valueQuantity":{{"value":{}}}}}'
)


@fuzz(100)
@given(text=PLAIN_DECIMALS | EXPONENTS)
@example(text="72.50")
@example(text="0.00000010")
@example(text="0.0000000")
def test_stored_decimals_keep_their_text(client: TestClient, known: Known, text: str) -> None:
    body = DECIMAL_BODY.format(text).encode()
    check(Call("PUT", "Observation/fuzz-decimal", body).send(client), frozenset({200, 201}))
    read = Call("GET", "Observation/fuzz-decimal").send(client)
    stored = json.loads(read.content, parse_float=str, parse_int=str)["valueQuantity"]["value"]
    if "e" in text.lower():
        # 1e2 and 1E+2 are the same decimal with the same precision: either spelling is fine.
        assert Decimal(stored).as_tuple() == Decimal(text).as_tuple(), (text, stored)
    else:
        assert stored == text, f"sent {text}, stored {stored}"
    known.assert_unchanged()
