"""Choose and open the storage adapter named by the settings.

Only the composition roots (``web/``, ``cli/``) call this; everything else talks to
:class:`~rempart.storage.ports.ResourceStore`.
"""

from __future__ import annotations

from pathlib import Path

from rempart.config import Settings
from rempart.errors import Category, RempartError
from rempart.storage.auth_ports import AuthStore, ReplayCache
from rempart.storage.crypto import KeyRing, secret_file
from rempart.storage.index import BlindIndex
from rempart.storage.ports import ResourceStore


def open_keyring(settings: Settings) -> KeyRing:
    if settings.crypto.env_key:
        return KeyRing.from_env(settings.crypto.env_key)
    path = settings.crypto.key_file or settings.storage.data_dir / "keys" / "data-keys.json"
    return KeyRing.open(path)


def open_blind_index(settings: Settings) -> BlindIndex:
    """The key of the blind index of person identifiers, kept beside the data keys."""
    folder = (
        settings.crypto.key_file.parent
        if settings.crypto.key_file
        else settings.storage.data_dir / "keys"
    )
    return BlindIndex(secret_file(folder / "index.key", "blind index"))


async def open_store(settings: Settings, keys: KeyRing | None = None) -> ResourceStore:
    keys = keys or open_keyring(settings)
    blind = open_blind_index(settings)
    url = settings.storage.url
    if url.startswith("sqlite:///"):
        from rempart.storage.sqlite import SqliteStore

        return SqliteStore(
            Path(url.removeprefix("sqlite:///")), keys, blind, settings.storage.group_commit_max
        )
    if url.startswith(("postgresql://", "postgres://")):
        from rempart.storage.postgres import PostgresStore

        storage = settings.storage
        return await PostgresStore.open(
            url, keys, blind, storage.postgres_schema, storage.pool_size
        )
    raise RempartError(Category.FAULT, "Unsupported database URL (sqlite:/// or postgresql://)")


def auth_path(settings: Settings) -> Path:
    """The SQLite file of the authorization server, beside the resource database."""
    database = Path(settings.storage.url.removeprefix("sqlite:///"))
    return database.with_name(f"{database.stem}-auth.db")


async def open_auth_store(settings: Settings) -> AuthStore:
    url = settings.storage.url
    if url.startswith("sqlite:///"):
        from rempart.storage.sqlite.auth import open_sqlite_auth

        return open_sqlite_auth(auth_path(settings))
    from rempart.storage.postgres.auth import open_postgres_auth

    storage = settings.storage
    return await open_postgres_auth(url, storage.postgres_schema, min(4, storage.pool_size))


async def open_replay_cache(settings: Settings, store: AuthStore) -> ReplayCache:
    """Redis when several processes share one (REMPART_REDIS_URL), else the database."""
    if settings.auth.redis_url:
        from rempart.storage.redis_replay import open_redis_replay

        return await open_redis_replay(settings.auth.redis_url)
    from rempart.storage.auth_sql import DatabaseReplayCache

    return DatabaseReplayCache(store)
