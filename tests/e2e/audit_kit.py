"""What the audit end-to-end tests share: ``rempart audit verify`` as a process, and
the events as stored, read from the audit store itself."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import orjson

from rempart.config import Settings
from rempart.storage.open_audit import open_audit_store


def run_verify(settings: Settings) -> tuple[int, dict[str, Any]]:
    cmd = [sys.executable, "-m", "rempart.cli", "audit", "verify"]
    cmd += ["--data-dir", str(settings.storage.data_dir)]
    if settings.storage.database_url:
        cmd += ["--database", settings.storage.database_url]
    env = {**os.environ, "REMPART_PG_SCHEMA": settings.storage.postgres_schema}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout or "{}")


def stored_events(settings: Settings) -> list[tuple[str | None, dict[str, Any]]]:
    """Every event in chain order, with the request id it names (``XrequestId``)."""
    return asyncio.run(_read(settings))


async def _read(settings: Settings) -> list[tuple[str | None, dict[str, Any]]]:
    store = await open_audit_store(settings, None, create=False)
    found: list[tuple[str | None, dict[str, Any]]] = []
    try:
        async for record in store.records():
            event = orjson.loads(record.body)
            ids = [
                entity["what"]["identifier"]["value"]
                for entity in event.get("entity", ())
                if entity.get("type", {}).get("code") == "XrequestId"
            ]
            found.append((ids[0] if ids else None, event))
    finally:
        await store.close()
    return found


def status_of(event: dict[str, Any]) -> int:
    """The HTTP status an event records (its ``outcomeDesc`` starts with it)."""
    return int(str(event.get("outcomeDesc", "0")).split()[0])
