"""Choose and open the audit store named by the settings, and its checkpoint key.

SQLite deployments keep the audit in ``<data_dir>/audit.db``; PostgreSQL ones in the
schema ``<postgres_schema>_audit`` of the same database. The checkpoint signing key
is ``<data_dir>/keys/audit-signing.key``, whatever the database.
"""

from __future__ import annotations

from pathlib import Path

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.security.audit.checkpoints import PUBLIC_FILE, CheckpointSigner
from rempart.security.audit.ports import AuditStore


def audit_keys_dir(settings: Settings) -> Path:
    return settings.storage.data_dir / "keys"


def audit_public_key_path(settings: Settings) -> Path:
    return audit_keys_dir(settings) / PUBLIC_FILE


def open_audit_signer(settings: Settings) -> CheckpointSigner:
    return CheckpointSigner.open(audit_keys_dir(settings))


async def open_audit_store(
    settings: Settings, signer: CheckpointSigner | None, create: bool = True
) -> AuditStore:
    """The audit store; ``signer`` may be ``None`` for reading (verification), and
    ``create=False`` refuses a SQLite file that does not exist."""
    url = settings.storage.url
    if url.startswith("sqlite:///"):
        from rempart.storage.sqlite.audit import open_sqlite_audit

        return open_sqlite_audit(settings.storage.data_dir / "audit.db", signer, create)
    if url.startswith(("postgresql://", "postgres://")):
        from rempart.storage.postgres.audit import open_postgres_audit

        storage = settings.storage
        return await open_postgres_audit(
            url, storage.postgres_schema, signer, min(4, storage.pool_size)
        )
    raise RempartError(Category.FAULT, "Unsupported database URL (sqlite:/// or postgresql://)")
