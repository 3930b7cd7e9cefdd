"""Hypothesis strategies for ``test_fuzz.py``: hostile ids, types, versions, headers,
parameters and bodies for every FHIR interaction, and the resources they must not touch."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hypothesis import strategies as st
from starlette.testclient import TestClient

from rempart.config import LimitSettings

if TYPE_CHECKING:
    from httpx2 import Response  # what Starlette's TestClient answers with
    from starlette.testclient import TestClient

MARKER = "ZqxFuzzMarker"
LIMIT = LimitSettings().max_body_bytes
FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.]{8,64}")


# --- The resources that must survive ----------------------------------------------

KNOWN_BODIES = {
    "Patient/known-patient": b'{"resourceType":"Patient","id":"known-patient","active":true,'
    b'"name":[{"family":"Known","given":["Ada"]}],"birthDate":"1970-01-02"}',
    "Observation/known-obs": b'{"resourceType":"Observation","id":"known-obs","status":"final",'
    b'"code":{"text":"weight"},"valueQuantity":{"value":72.50,"unit":"kg"}}',
    "Patient/known-v2": b'{"resourceType":"Patient","id":"known-v2","active":true}',
    "Patient/known-gone": b'{"resourceType":"Patient","id":"known-gone"}',
    # Not protected: the resource the patch fuzz works on.
    "Patient/fuzz-patch": b'{"resourceType":"Patient","id":"fuzz-patch","active":true,'
    b'"name":[{"family":"Patch"}]}',
}
KNOWN = [path for path in KNOWN_BODIES if "known" in path]
CURRENT_VERSIONS = {1, 2}
SNAPSHOT_URLS = [
    f"/fhir/{known}{suffix}" for known in KNOWN for suffix in ("", "/_history", "/_history/1")
] + ["/fhir/Patient/known-v2/_history/2"]


@dataclass
class Call:
    method: str
    path: str
    """Below ``/fhir/``, segments already encoded."""
    body: bytes | Iterable[bytes] | None = None
    headers: dict[str, bytes] = field(default_factory=dict)
    params: list[tuple[str, str]] = field(default_factory=list)

    def send(self, client: TestClient) -> Response:
        return client.request(
            self.method,
            f"/fhir/{self.path}",
            content=self.body,
            headers={name.encode(): value for name, value in self.headers.items()},
            params=tuple(self.params),
            follow_redirects=False,
        )


# --- Strategies: ids, types, versions, headers, parameters ------------------------


def words(text: str) -> list[str]:
    return text.split()


def marked(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(base, base).map(lambda pair: f"{pair[0]}{MARKER}{pair[1]}")


def not_known(text: str) -> bool:
    return "known" not in text.lower() and "fuzz-patch" not in text


def segment(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A path segment: encoded, or one of the raw escapes the server must decode safely."""
    raw = [*words("%00 %2F %2e%2e .. . % %zz a%20b %252e %C0%AE %ff"), ""]
    return text.map(lambda value: quote(value, safe="")) | st.sampled_from(raw)


# Digits that str.isdigit() accepts but int() may not: superscripts, Arabic-Indic, fullwidth.
ODD_DIGITS = ["\u00b2", "\u00b9", "\u0663", "\uff11"]
SHORT = st.text(max_size=20)
STRINGS = SHORT | marked(SHORT)
NAMES = words("Patient Observation Bundle Parameters OperationOutcome")
BAD_TYPES = words("patient PATIENT Foo .. . _history metadata Pätient $everything")
TYPES = (
    st.sampled_from([*NAMES, *BAD_TYPES, "Patient ", "Pat ient", "Patient\x00", "P" * 300, MARKER])
    | st.text(max_size=30)
).filter(not_known)
TYPE_SEGMENTS = TYPES.map(lambda text: quote(text, safe=""))
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-."
GOOD_IDS = st.from_regex(r"fuzz-[A-Za-z0-9\-.]{1,20}", fullmatch=True).filter(not_known)
BAD_IDS = (
    st.sampled_from([" ", "a b", "x" * 65, "é", "日本", "..", "a/b", "a?b", "a#b", "\x00", "\n"])
    | st.sampled_from([MARKER * 5, f"{MARKER} x", f"{MARKER}/x", f"{MARKER}é"])
    | st.text(min_size=1, max_size=100)
    | st.text(alphabet=ID_CHARS, min_size=65, max_size=200)
).filter(not_known)
VERSIONS = segment(
    st.sampled_from([*words("0 -1 1.0 01 abc 9999999999 99999999999999999999"), *ODD_DIGITS])
    | st.sampled_from([" 1", "1 ", MARKER, f"1{MARKER}"])
    | st.text(max_size=12)
)


def header(samples: list[str]) -> st.SearchStrategy[bytes]:
    latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    printable = st.text(latin1, max_size=60)
    return (st.sampled_from(samples) | printable | marked(printable)).map(
        lambda value: value.encode()
    )


CONTENT_TYPES = [
    *words(f"{FHIR_JSON} application/json application/json+fhir {JSON_PATCH} text/plain"),
    *words("application/fhir+xml application/xml text/xml garbage"),
    f"{FHIR_JSON}; charset=utf-8",
    "multipart/form-data; boundary=x",
    "",
]
ACCEPTS = [*words(f"{FHIR_JSON} application/fhir+xml application/xml text/html */* garbage"), ""]
ETAGS = ['W/"1"', 'W/"2"', 'W/"99"', '"1"', "*", 'W/"abc"', 'W/"-1"', 'W/"9999999999"', "W/", '"']
ETAGS += [f'W/"{digit}"' for digit in ODD_DIGITS]
PREFERS = words("return=minimal return=representation return=OperationOutcome return= return")
PREFERS += ["respond-async", "handling=strict", "return=minimal, return=x", ";;;,,,=="]
DATES = ["Mon, 01 Jan 2001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "yesterday", ""]
DATES += ["Mon, 01 Jan 99999 00:00:00 +9999"]
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": header(CONTENT_TYPES),
        "accept": header(ACCEPTS),
        "if-match": header(ETAGS),
        "if-none-match": header(ETAGS),
        "if-modified-since": header(DATES),
        "if-none-exist": header(["identifier=x", MARKER]),
        "prefer": header(PREFERS),
        "x-request-id": header([f"{MARKER} x", "x" * 65, "short", "../../etc"]),
        "host": header(["evil.example", "h:99999", "[::1]:8080", "a b", "x/y", MARKER, ""]),
    },
)
PARAM_NAMES = [*words("_since _at _count _cursor _format _summary _elements foo"), MARKER]
PARAM_VALUES = [
    *words("0 -1 999999 1000000 1.5 2020 2020-01-01 2020-02-30 0001-01-01 0000 9999-12-31"),
    *words("9999-12-31T23:59:59Z 2020-01-01T00:00:00+99:99 2020-01-01T25:00:00Z json xml"),
    *words("application/fhir+xml text/html MQ.abc é.é"),
    *ODD_DIGITS,
    *["", "\x00", MARKER],
]
PARAMS = st.lists(
    st.tuples(
        st.sampled_from(PARAM_NAMES) | st.text(max_size=10),
        st.sampled_from(PARAM_VALUES) | STRINGS,
    ),
    max_size=4,
)

# --- Strategies: bodies -------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
# Keys are at most 10 characters: the marker goes in values, ids and headers only
# (element names are echoed in OperationOutcome paths: see the targeted test below).
JSON_VALUES = st.recursive(
    SCALARS | STRINGS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_M = MARKER.encode()
MALFORMED = [
    *b'{ } [ null true 0 "Patient" [] {} NaN \x00 \xff\xfe'.split(),
    b"",
    b'{"resourceType":',
    b'{"resourceType":"Patient",}',
    b'{"resourceType":"Patient"} x',
    b'{"resourceType":"Patient","active":NaN}',
    b'{"resourceType":"Patient","a":Infinity}',
    b'\xef\xbb\xbf{"resourceType":"Patient"}',
    b"{'resourceType':'Patient'}",
    b'{"resourceType":"Patient","name":[{"family":"\\ud800"}]}',
    b'{"resourceType":"Patient","id":"a","id":"b"}',
    b'<Patient xmlns="http://hl7.org/fhir"/>',
    b'{"resourceType":null}',
    b'{"resourceType":1}',
    b'{"resourceType":["Patient"]}',
    b'{"resourceType":"Patient","id":1}',
    b'{"resourceType":"Patient","multipleBirthInteger":1e999}',
    b'{"resourceType":"' + _M + b'"}',
    b'{"resourceType":"Patient","gender":"' + _M,
    b'{"resourceType":"Patient","gender":' + _M + b"}",
    b'{"resourceType":"Patient","name":[{"family":"\\u' + _M + b'"}]}',
    b'{"resourceType":"Patient","birthDate":"' + _M + b'"}',
    b'{"resourceType":"Patient","gender":"' + _M + b'\xff"}',
]
FIELDS = words("active name birthDate gender meta text contained extension _birthDate id")
FIELDS += words("multipleBirthInteger resourceType status code valueQuantity subject identifier")
VALID_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "active": st.booleans(),
        "name": st.lists(st.fixed_dictionaries({"family": STRINGS}), min_size=1, max_size=2),
        "birthDate": st.sampled_from(["2000", "2000-01-02", "2000-13-01", "20000", MARKER]),
        "gender": st.sampled_from(["male", "female", "other", "unknown", "yes", MARKER]),
    },
)


def dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def resources(type_: str, id_: str | None) -> st.SearchStrategy[bytes]:
    """Resource-shaped bodies: right or wrong JSON types, known or unknown fields."""
    base = {"resourceType": type_} if id_ is None else {"resourceType": type_, "id": id_}
    wrong = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=3)
    return st.one_of(VALID_FIELDS, wrong).map(lambda fields: dump({**base, **fields}))


BODIES = st.one_of(
    st.sampled_from(MALFORMED),
    st.binary(max_size=300),
    JSON_VALUES.map(dump),
    resources("Patient", None),
    resources("Observation", MARKER),
)

POINTERS = words("/ /name /name/0 /name/0/family /name/- /name/99 /name/-1 /id /resourceType /meta")
POINTERS += [*words("/meta/versionId /active /gender /~1 /~2 name /extension"), "", f"/{MARKER}"]
JSON_PATCH_OPS = st.fixed_dictionaries(
    {
        "op": st.sampled_from([*words("add remove replace move copy test bogus"), MARKER])
        | JSON_VALUES
    },
    optional={
        "path": st.sampled_from(POINTERS) | JSON_VALUES,
        "from": st.sampled_from(POINTERS) | STRINGS,
        "value": JSON_VALUES | VALID_FIELDS,
    },
)
JSON_PATCHES = st.lists(JSON_PATCH_OPS, max_size=4).map(dump) | JSON_VALUES.map(dump)
FHIRPATHS = [
    *words("Patient Patient.name Patient.name[0] Patient.name[0].family Patient.name.first()"),
    *words("Patient.name.last() Patient.identifier Patient.active Observation.status"),
    *words("Patient.contact Patient. Patient..name Patient.name[99999999999999999999]"),
    *["Patient.name.where(family='Patch')", "Patient.name.where(", f"Patient.{MARKER}"],
    f"Patient.name.where(family='{MARKER}')",
    "Patient.name.where(given = 1.5 and family = true)",
    "Patient.name.where(" + "family='a' and " * 500 + "family='b')",
]
PATCH_PART = st.fixed_dictionaries(
    {"name": st.sampled_from([*words("type path name value index source destination"), MARKER])},
    optional={
        "valueString": st.sampled_from(FHIRPATHS) | STRINGS,
        "valueCode": st.sampled_from([*words("add insert delete replace move"), MARKER]),
        "valueInteger": st.integers(min_value=-(2**40), max_value=2**40),
        "valueBoolean": st.booleans(),
        "valueDecimal": st.floats(allow_nan=False, allow_infinity=False),
        "part": st.lists(
            st.fixed_dictionaries({"name": STRINGS, "valueString": STRINGS}), max_size=2
        ),
    },
)
FHIRPATH_OPERATIONS = st.fixed_dictionaries(
    {"name": st.sampled_from(["operation", "op", MARKER]), "part": st.lists(PATCH_PART, max_size=6)}
)
FHIRPATH_PATCHES = st.lists(FHIRPATH_OPERATIONS, max_size=3).map(
    lambda ops: dump({"resourceType": "Parameters", "parameter": ops})
)
PATCH_TYPES = [JSON_PATCH, FHIR_JSON, "application/json", "application/xml", "text/plain", ""]

# --- Strategies: calls --------------------------------------------------------------


@st.composite
def creates(draw: st.DrawFn) -> Call:
    type_ = draw(TYPES)
    body = draw(BODIES | resources(type_, None))
    return Call("POST", quote(type_, safe=""), body, draw(HEADERS), draw(PARAMS))


@st.composite
def updates(draw: st.DrawFn) -> Call:
    type_, id_ = draw(TYPES), draw(GOOD_IDS | BAD_IDS)
    body = draw(BODIES | resources(type_, id_))
    path = f"{quote(type_, safe='')}/{draw(segment(st.just(id_)))}"
    return Call("PUT", path, body, draw(HEADERS), draw(PARAMS))


@st.composite
def deletes(draw: st.DrawFn) -> Call:
    path = f"{draw(TYPE_SEGMENTS | st.just('Patient'))}/{draw(segment(BAD_IDS))}"
    return Call("DELETE", path, None, draw(HEADERS), draw(PARAMS))


@st.composite
def patches(draw: st.DrawFn) -> Call:
    other = f"{draw(TYPE_SEGMENTS | st.just('Patient'))}/{draw(segment(GOOD_IDS | BAD_IDS))}"
    path = draw(st.sampled_from(["Patient/fuzz-patch", other]))
    body = draw(JSON_PATCHES | FHIRPATH_PATCHES | BODIES)
    content_type = draw(st.sampled_from(PATCH_TYPES).map(str.encode) | header(CONTENT_TYPES))
    return Call("PATCH", path, body, {**draw(HEADERS), "content-type": content_type})


@st.composite
def stale_writes(draw: st.DrawFn) -> Call:
    """A write aimed at a protected resource, always with an If-Match that is not current."""
    target = draw(st.sampled_from(KNOWN))
    type_, id_ = target.split("/")
    body = draw(BODIES | resources(type_, id_) | JSON_PATCHES | FHIRPATH_PATCHES)
    headers = {**draw(HEADERS), "if-match": draw(stale_etags())}
    return Call(draw(st.sampled_from(["PUT", "PATCH", "DELETE"])), target, body, headers)


def stale_etags() -> st.SearchStrategy[bytes]:
    versions = st.integers(min_value=3, max_value=10**9 - 1)
    etags = versions.map(lambda v: f'W/"{v}"') | versions.map(lambda v: f'"{v}"')
    garbage = header(ETAGS).map(bytes.decode)
    stale = (etags | garbage).filter(lambda etag: not _names_current_version(etag))
    return stale.map(str.encode)


def _names_current_version(etag: str) -> bool:
    # The server's own reading of If-Match (rest/common.py), so stale means stale to it.
    match = re.fullmatch(r'(?:W/)?"(\d{1,9})"', etag.strip())
    return match is not None and int(match.group(1)) in CURRENT_VERSIONS


@st.composite
def reads(draw: st.DrawFn) -> Call:
    type_ = draw(st.sampled_from(["Patient", "Observation"]) | TYPE_SEGMENTS)
    id_ = draw(segment(GOOD_IDS | BAD_IDS) | st.sampled_from([k.split("/")[1] for k in KNOWN]))
    paths = [f"{type_}/{id_}", f"{type_}/{id_}/_history", f"{type_}/_history", "_history"]
    paths.append(f"{type_}/{id_}/_history/{draw(VERSIONS)}")
    method = draw(st.just("GET") | st.sampled_from(["OPTIONS", "TRACE", "FOO"]))
    return Call(method, draw(st.sampled_from(paths)), None, draw(HEADERS), draw(PARAMS))
