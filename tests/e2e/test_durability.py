"""Durability through crashes: a real server SIGKILLed mid-stream, on SQLite and PostgreSQL.

Eight clients stream PUTs (new resources and new versions) and record every write
the server acknowledged. The server is killed without warning, restarted on the
same data, and every acknowledged write must be there, byte for byte apart from
meta; a write in flight at the crash may be there or not, but never half-written;
every history is contiguous (1..n). Three crashes in a row, each checked.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from rempart.config import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess

FHIR = {"content-type": "application/fhir+json"}
WORKERS = 8
CRASHES = 3
KILL_AFTER_SECONDS = 2.0
KILL_AFTER_WRITES = 300
Body = dict[str, Any]


def patient(id_: str, step: int) -> Body:
    return {
        "resourceType": "Patient",
        "id": id_,
        "identifier": [{"system": "urn:rempart:durability", "value": f"{id_}#{step}"}],
        "name": [{"family": f"Crash{step}", "given": ["Dura", id_]}],
        "birthDate": f"19{step % 100:02d}-01-01",
    }


def without_meta(body: Body) -> Body:
    return {k: v for k, v in body.items() if k != "meta"}


@dataclass
class Ledger:
    """What one client sent: acknowledged versions in order, and the write lost in flight."""

    acked: dict[str, list[Body]] = field(default_factory=dict)
    in_flight: dict[str, Body] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(versions) for versions in self.acked.values())


class Client(threading.Thread):
    """Writes its own resources (so it knows each next version) until the server dies."""

    def __init__(
        self, base: str, prefix: str, dying: threading.Event, headers: dict[str, str]
    ) -> None:
        super().__init__(name=f"writer-{prefix}")
        self.base, self.prefix, self.dying = base, prefix, dying
        self.headers = headers
        self.ledger = Ledger()
        self.random = random.Random(prefix)

    def run(self) -> None:
        with httpx.Client(base_url=self.base + "/", headers=self.headers, timeout=30) as http:
            step = 0
            while self.write(http, self.next_id(step), step):
                step += 1

    def next_id(self, step: int) -> str:
        ids = list(self.ledger.acked)
        if ids and step % 3 == 2:
            return self.random.choice(ids)  # a new version of an earlier resource
        return f"{self.prefix}-{step}"

    def write(self, http: httpx.Client, id_: str, step: int) -> bool:
        body = patient(id_, step)
        expected = len(self.ledger.acked.get(id_, [])) + 1
        try:
            answer = http.put(f"Patient/{id_}", content=json.dumps(body), headers=FHIR)
        except httpx.HTTPError as exc:
            self.ledger.in_flight[id_] = body
            if not self.dying.is_set():
                self.ledger.errors.append(f"{id_}: {exc!r} before the kill")
            return False
        if answer.status_code not in (200, 201) or answer.headers["etag"] != f'W/"{expected}"':
            self.ledger.errors.append(f"{id_}: {answer.status_code} {answer.headers.get('etag')}")
            return False
        self.ledger.acked.setdefault(id_, []).append(body)
        return True


def write_until_killed(server: ServerProcess, prefix: str) -> list[Ledger]:
    dying = threading.Event()
    clients = [Client(server.base, f"{prefix}w{n}", dying, server.headers) for n in range(WORKERS)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + KILL_AFTER_SECONDS
    while time.monotonic() < deadline and sum(c.ledger.count for c in clients) < KILL_AFTER_WRITES:
        time.sleep(0.02)
    dying.set()
    server.kill()
    for client in clients:
        client.join(30)
    assert not any(client.is_alive() for client in clients)
    ledgers = [client.ledger for client in clients]
    assert [error for ledger in ledgers for error in ledger.errors] == []
    assert any(ledger.in_flight for ledger in ledgers), "the kill did not interrupt the stream"
    return ledgers


def check_resource(http: httpx.Client, id_: str, acked: list[Body], in_flight: Body | None) -> None:
    """Acknowledged versions all there and equal; the lost write whole or absent."""
    possible = [*acked, in_flight] if in_flight is not None else acked
    answer = http.get(f"Patient/{id_}")
    if not acked and answer.status_code == 404:
        return  # only an unacknowledged create, which did not survive: allowed
    assert answer.status_code == 200, f"{id_}: {answer.status_code} {answer.text[:200]}"
    current = int(answer.json()["meta"]["versionId"])
    assert len(acked) <= current <= len(possible), f"{id_}: v{current}, {len(acked)} acknowledged"
    assert without_meta(answer.json()) == possible[current - 1]
    if acked:
        vread = http.get(f"Patient/{id_}/_history/{len(acked)}")
        assert vread.status_code == 200 and without_meta(vread.json()) == acked[-1]
    history = http.get(f"Patient/{id_}/_history", params={"_count": "500"}).json()
    stored = [entry["resource"] for entry in history["entry"]]
    assert [int(r["meta"]["versionId"]) for r in stored] == list(range(current, 0, -1))
    assert [without_meta(r) for r in reversed(stored)] == possible[:current]


def stored_versions(http: httpx.Client) -> set[tuple[str, int]]:
    """(id, version) of every stored version, each decrypted: system history, page by page."""
    seen: set[tuple[str, int]] = set()
    url: str | None = "_history?_count=500"
    while url is not None:
        answer = http.get(url)
        assert answer.status_code == 200, answer.text[:200]
        bundle = answer.json()
        seen |= {
            (e["resource"]["id"], int(e["resource"]["meta"]["versionId"])) for e in bundle["entry"]
        }
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return seen


def check_everything(server: ServerProcess, ledgers: list[Ledger]) -> None:
    cases = [
        (id_, ledger.acked.get(id_, []), ledger.in_flight.get(id_))
        for ledger in ledgers
        for id_ in {*ledger.acked, *ledger.in_flight}
    ]
    sent = {
        (id_, version)
        for id_, acked, lost in cases
        for version in range(1, len(acked) + (lost is not None) + 1)
    }
    limits = httpx.Limits(max_connections=WORKERS)
    with (
        httpx.Client(
            base_url=server.base + "/", headers=server.headers, timeout=30, limits=limits
        ) as http,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        # list() re-raises the first failed assertion here, in the test's thread.
        list(pool.map(lambda case: check_resource(http, *case), cases))
        assert stored_versions(http) <= sent, "a stored version nobody sent"


def assert_sqlite_intact(settings: Settings) -> None:
    with closing(sqlite3.connect(settings.storage.data_dir / "rempart.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_acknowledged_writes_survive_sigkill(server: ServerProcess, settings: Settings) -> None:
    sqlite = settings.storage.database_url is None
    ledgers: list[Ledger] = []
    for crash in range(CRASHES):
        ledgers += write_until_killed(server, f"c{crash}")
        if sqlite:
            assert_sqlite_intact(settings)  # as the crash left it, before a server touches it
        server.start()
        check_everything(server, ledgers)
    assert sum(ledger.count for ledger in ledgers) >= CRASHES * 50, "too few writes to mean much"
