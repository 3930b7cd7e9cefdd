"""Loading files into the store, batch by batch, reporting what is rejected.

NDJSON lines are validated one by one; the valid ones of each batch of lines go to the
store in one transaction (:meth:`ResourceStore.write_all`). A line with an id is an
update (PUT); a line without one is a create whose id is derived from the file and the
line number, so that redoing a batch cannot create the resource twice. Bundles go
through the same code as ``POST [base]``: a transaction commits whole or is rejected
whole; a batch's entries succeed or fail one by one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from rempart.errors import RempartError
from rempart.fhir.bundle import Entry, parse_bundle
from rempart.importing.journal import FileState, Journal
from rempart.rest.bundle import Transaction, dispatch
from rempart.rest.common import check_id, renderer
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest
from rempart.storage.ports import WriteRequest

IDS = uuid.UUID("6b1f3c52-58c1-4a0e-9a51-4d0c3b0f7e21")
"""Namespace of the ids given to NDJSON lines without one."""
MAX_BUNDLE_ENTRIES = 100_000
"""The operator's own files: larger than what the API accepts from a caller."""
REQUEST = FhirRequest("POST", "urn:rempart:import", headers={"prefer": "return=minimal"})

Report = Callable[[str, str], None]
"""Told where (``file:line``) and why a line or entry was rejected."""
Tick = Callable[[int, int], None]
"""Told the resources just committed and the bytes of the file they covered."""


@dataclass
class Line:
    number: int
    request: WriteRequest


class Loader:
    def __init__(
        self, ctx: Context, journal: Journal, report: Report, tick: Tick, batch: int = 500
    ) -> None:
        self.ctx, self.journal, self.report, self.tick, self.batch = (
            ctx,
            journal,
            report,
            tick,
            batch,
        )

    async def load(self, path: Path) -> FileState:
        """Loads one file from where the journal says it stopped; returns its state."""
        key = self.journal.key(path)
        state = self.journal.state(key)
        if state.done:
            return state
        if path.suffix in (".ndjson", ".jsonl"):
            await self._ndjson(path, key, state)
        else:
            await self._bundle(path, state)
        state.done = True
        self.journal.save(key, state)
        return state

    async def _ndjson(self, path: Path, key: str, state: FileState) -> None:
        with open(path, "rb") as source:
            source.seek(state.offset)
            pending: list[Line] = []
            read = 0
            for raw in source:
                state.line += 1
                read += len(raw)
                if raw.strip():
                    self._parse(path, key, state, raw, pending)
                if state.line % self.batch == 0:
                    await self._commit(path, key, state, pending, read)
                    pending, read = [], 0
            await self._commit(path, key, state, pending, read)

    def _parse(
        self, path: Path, key: str, state: FileState, raw: bytes, pending: list[Line]
    ) -> None:
        try:
            pending.append(Line(state.line, self._write_request(raw, f"{key}:{state.line}")))
        except RempartError as error:
            state.rejected += 1
            self.report(f"{path}:{state.line}", describe(error))

    def _write_request(self, raw: bytes, origin: str) -> WriteRequest:
        resource = self.ctx.validator.load(raw)
        type_ = resource["resourceType"]
        if "id" in resource:
            id_ = check_id(resource["id"])
            return WriteRequest(type_, id_, renderer(self.ctx, resource, id_))
        id_ = str(uuid.uuid5(IDS, origin))
        return WriteRequest(type_, id_, renderer(self.ctx, resource, id_), method="POST")

    async def _commit(
        self, path: Path, key: str, state: FileState, pending: list[Line], read: int
    ) -> None:
        loaded = await self._write(path, pending)
        state.loaded += loaded
        state.offset += read
        self.journal.save(key, state)
        self.tick(loaded, read)

    async def _write(self, path: Path, pending: list[Line]) -> int:
        """Writes the batch in one transaction; if it fails, line by line to find why."""
        if not pending:
            return 0
        try:
            await self.ctx.store.write_all([line.request for line in pending])
            return len(pending)
        except RempartError:
            written = 0
            for line in pending:
                try:
                    await self.ctx.store.write(line.request)
                    written += 1
                except RempartError as error:
                    self.report(f"{path}:{line.number}", describe(error))
            return written

    async def _bundle(self, path: Path, state: FileState) -> None:
        size = path.stat().st_size
        try:
            document = json.loads(path.read_bytes(), parse_float=Decimal)
            if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
                raise ValueError
        except (ValueError, RecursionError):
            state.rejected += 1
            self.report(str(path), "not a FHIR Bundle in JSON (NDJSON files end in .ndjson)")
            return
        try:
            kind, entries = parse_bundle(document, max_entries=MAX_BUNDLE_ENTRIES)
        except RempartError as error:
            raw = document.get("entry")
            state.rejected += len(raw) if isinstance(raw, list) and raw else 1
            self.report(str(path), describe(error))
            return
        if kind == "transaction":
            await self._transaction(path, state, entries)
        else:
            await self._batch(path, state, entries)
        self.tick(state.loaded, size)  # a Bundle file is never resumed part-way

    async def _transaction(self, path: Path, state: FileState, entries: list[Entry]) -> None:
        try:
            await Transaction(self.ctx, REQUEST).run(entries)
            state.loaded += len(entries)
        except RempartError as error:
            state.rejected += len(entries)
            self.report(
                str(path), f"transaction rejected whole ({len(entries)} entries): {describe(error)}"
            )

    async def _batch(self, path: Path, state: FileState, entries: list[Entry]) -> None:
        for entry in entries:
            try:
                await dispatch(self.ctx, REQUEST, entry)
                state.loaded += 1
            except RempartError as error:
                state.rejected += 1
                self.report(f"{path}: entry {entry.index}", describe(error))


def describe(error: RempartError) -> str:
    """The error's message and its first details, as the API would report them."""
    details = "; ".join(
        f"{issue.path}: {issue.message}" if issue.path else issue.message
        for issue in error.issues[:3]
    )
    return f"{error.message} ({details})" if details else error.message
