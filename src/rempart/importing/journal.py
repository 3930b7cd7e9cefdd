"""The import journal: how far each file got, so that a re-run resumes after the last
committed batch instead of starting over.

A file is known by its resolved path, size and modification time, and by the store it
went into (a hash of the database URL and schema: the journal lives in the data
directory, and the URL may carry a password). The journal is rewritten whole (a
temporary file then a rename) after each committed batch, so it is never half
written; a kill between a commit and its journal update makes the re-run redo that
one batch, which writes the same ids again (PUT semantics) and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson


@dataclass
class FileState:
    offset: int = 0
    """Bytes of the file committed (NDJSON); a Bundle file is done or not."""
    line: int = 0
    """Lines committed (NDJSON)."""
    loaded: int = 0
    rejected: int = 0
    done: bool = False


class Journal:
    def __init__(self, path: Path, store: str) -> None:
        self.path = path
        self.store = hashlib.sha256(store.encode()).hexdigest()[:16]
        self.states: dict[str, dict[str, int | bool]] = (
            orjson.loads(path.read_bytes()) if path.exists() else {}
        )

    def key(self, file: Path) -> str:
        stat = file.stat()
        return f"{self.store}|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def state(self, key: str) -> FileState:
        known = self.states.get(key)
        return FileState(**known) if known else FileState()  # type: ignore[arg-type]

    def save(self, key: str, state: FileState) -> None:
        self.states[key] = asdict(state)
        temporary = self.path.with_name(f"{self.path.name}.tmp")
        temporary.write_bytes(orjson.dumps(self.states, option=orjson.OPT_INDENT_2))
        os.replace(temporary, self.path)
