"""The audit through a crash: a real server SIGKILLed during mixed traffic, on SQLite
and PostgreSQL, with one worker and with two.

Eight clients send reads, searches, creates and requests with a bad token (401), each
with an ``X-Request-Id`` of their own, and note every request whose answer they
received whole (status line and body). The server is killed without warning; then
``rempart audit verify`` must pass on the store as the crash left it, and again after
a restart on the same data; every answered request must have its AuditEvent, with
the status it was answered with; every acknowledged create must be there. A request
in flight at the kill may have its events or not (committed but not yet answered, or
not committed): both are allowed, and neither breaks the chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from audit_kit import run_verify, status_of, stored_events

from conftest import ServerProcess
from rempart.config import Settings

FHIR = {"content-type": "application/fhir+json"}
CLIENTS = 8
SEEDED = 20
KILL_AFTER_SECONDS = 1.5
KILL_AFTER_ANSWERS = 400


@dataclass
class Ledger:
    """What one client saw: the status of each answered request, by request id; the
    ids of the Patients whose create was acknowledged; the request cut by the kill."""

    answered: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Client(threading.Thread):
    def __init__(self, server: ServerProcess, name: str, dying: threading.Event) -> None:
        super().__init__(name=name)
        self.base, self.headers, self.dying = server.base, server.headers, dying
        self.ledger = Ledger()

    def run(self) -> None:
        with httpx.Client(base_url=self.base + "/", timeout=30) as http:
            step = 0
            while self.send(http, step):
                step += 1

    def send(self, http: httpx.Client, step: int) -> bool:
        request_id = f"{self.name}-{step:06d}"
        method, url, body, headers = self.request(step)
        headers = {**headers, "x-request-id": request_id}
        try:  # not streamed: a response is returned only once its body is all read
            answer = http.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.ledger.in_flight.append(request_id)
            if not self.dying.is_set():
                self.ledger.errors.append(f"{request_id}: {exc!r} before the kill")
            return False
        self.ledger.answered[request_id] = answer.status_code
        if answer.status_code == 201:
            self.ledger.created.append(answer.json()["id"])
        return True

    def request(self, step: int) -> tuple[str, str, bytes | None, dict[str, str]]:
        kind = step % 5
        if kind == 0:
            patient = {"resourceType": "Patient", "name": [{"family": "Crashaudit"}]}
            return "POST", "Patient", json.dumps(patient).encode(), {**self.headers, **FHIR}
        if kind == 1:
            return "GET", "Patient?family=Crashaudit&_count=5", None, self.headers
        if kind == 2:
            return "GET", "Patient/nobody", None, {"authorization": "Bearer not-a-token"}
        return "GET", f"Patient/seed-{step % SEEDED}", None, self.headers


def seed(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base + "/", headers=server.headers, timeout=30) as http:
        for n in range(SEEDED):
            body = {"resourceType": "Patient", "id": f"seed-{n}", "active": True}
            answer = http.put(f"Patient/seed-{n}", content=json.dumps(body), headers=FHIR)
            assert answer.status_code == 201


def traffic_until_killed(server: ServerProcess) -> list[Ledger]:
    dying = threading.Event()
    clients = [Client(server, f"crash-c{n}", dying) for n in range(CLIENTS)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + KILL_AFTER_SECONDS
    while (
        time.monotonic() < deadline
        and sum(len(c.ledger.answered) for c in clients) < KILL_AFTER_ANSWERS
    ):
        time.sleep(0.02)
    dying.set()
    kill_tree(server)
    for client in clients:
        client.join(30)
    assert not any(client.is_alive() for client in clients)
    ledgers = [client.ledger for client in clients]
    assert [error for ledger in ledgers for error in ledger.errors] == []
    assert any(ledger.in_flight for ledger in ledgers), "the kill did not interrupt the traffic"
    return ledgers


def kill_tree(server: ServerProcess) -> None:
    """SIGKILL the server and its worker processes (``--workers 2``), the supervisor
    first so that it cannot start new workers. The server shares the test's process
    group, so the group itself cannot be killed."""
    assert server.process is not None
    pids = [server.process.pid, *descendants(server.process.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and not zombie(pid) for pid in pids[1:]):
        assert time.monotonic() < deadline, "a worker survived SIGKILL"
        time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in (Path(f"/proc/{pid}/task/{pid}/children").read_text()).split():
        found += [int(child), *descendants(int(child))]
    return found


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


def recorded_statuses(settings: Settings) -> dict[str, set[int]]:
    """The statuses recorded for each request id, read from the audit store itself."""
    found: dict[str, set[int]] = {}
    for request_id, event in stored_events(settings):
        if request_id is not None:
            found.setdefault(request_id, set()).add(status_of(event))
    return found


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def crashed(request: pytest.FixtureRequest, settings: Settings) -> Iterator[ServerProcess]:
    server = ServerProcess(settings, workers=request.param).start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            kill_tree(server)


def test_every_answered_request_is_audited_after_sigkill(
    crashed: ServerProcess, settings: Settings
) -> None:
    seed(crashed)
    ledgers = traffic_until_killed(crashed)
    answered = {rid: status for ledger in ledgers for rid, status in ledger.answered.items()}
    assert {200, 201, 401} <= set(answered.values()) <= {200, 201, 401}, "no 503, no 5xx"
    code, verdict = run_verify(settings)  # the store as the crash left it
    assert (code, verdict.get("ok")) == (0, True), verdict

    crashed.start()
    created = [id_ for ledger in ledgers for id_ in ledger.created]
    with httpx.Client(base_url=crashed.base + "/", headers=crashed.headers, timeout=30) as http:
        missing = [id_ for id_ in created if http.get(f"Patient/{id_}").status_code != 200]
    assert missing == [], "acknowledged creates lost"
    crashed.stop()

    code, verdict = run_verify(settings)
    assert (code, verdict.get("ok")) == (0, True), verdict
    recorded = recorded_statuses(settings)
    unaudited = {rid: s for rid, s in answered.items() if s not in recorded.get(rid, set())}
    assert unaudited == {}, f"{len(unaudited)} of {len(answered)} answered requests unaudited"
    assert len(answered) >= 50, "too little traffic to mean much"
