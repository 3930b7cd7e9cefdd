"""The authorization server's records in SQL, written once for SQLite and PostgreSQL.

Implements :class:`~rempart.storage.auth_ports.AuthStore` (SMART App Launch 2.2,
RFC 6749 §4.1.2 codes used once, §10.4 refresh-token rotation, RFC 7523 §3 ``jti``
replay) over a :class:`Runner`: each dialect only supplies a way to read and a way to
run one write statement atomically. Statements use ``?`` placeholders.

Atomicity holds across processes because every operation that must happen once is a
single statement: ``INSERT … ON CONFLICT … RETURNING`` (``use_once``),
``DELETE … RETURNING`` (``take_grant``), ``UPDATE … WHERE NOT used RETURNING``
(``use_refresh``). A second statement racing the first waits for its row lock
(PostgreSQL) or the database write lock (SQLite), then finds nothing left to claim.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NamedTuple, Protocol

import orjson

from rempart.errors import Category, RempartError
from rempart.storage.auth_ports import (
    AuthStore,
    ClientRecord,
    LoginState,
    RefreshRecord,
    UserRecord,
)

Row = tuple[Any, ...]
Params = Sequence[Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}auth_client (
    client_id     TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    jwks          TEXT,
    jwks_url      TEXT,
    created       {real} NOT NULL,
    disabled      {bool} NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}auth_user (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    totp_secret   TEXT NOT NULL,
    fhir_user     TEXT,
    role          TEXT,
    end_date      TEXT,
    disabled      {bool} NOT NULL,
    created       {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}auth_login (
    username       TEXT PRIMARY KEY,
    failures       {int} NOT NULL,
    locked_until   {real} NOT NULL,
    last_totp_step {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}auth_once (
    key     TEXT PRIMARY KEY,
    expires {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_once_expires ON {p}auth_once (expires);
CREATE TABLE IF NOT EXISTS {p}auth_grant (
    key     TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    expires {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_grant_expires ON {p}auth_grant (expires);
CREATE TABLE IF NOT EXISTS {p}auth_refresh (
    token_hash TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    grant_data TEXT NOT NULL,
    expires    {real} NOT NULL,
    used       {bool} NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_refresh_family ON {p}auth_refresh (family);
CREATE INDEX IF NOT EXISTS auth_refresh_expires ON {p}auth_refresh (expires);
CREATE TABLE IF NOT EXISTS {p}auth_block (
    key     TEXT PRIMARY KEY,
    expires {real} NOT NULL
);
"""
TYPES = {
    "sqlite": {"int": "INTEGER", "real": "REAL", "bool": "INTEGER"},
    "postgres": {"int": "BIGINT", "real": "DOUBLE PRECISION", "bool": "BOOLEAN"},
}
EXPIRING = ("auth_once", "auth_grant", "auth_refresh", "auth_block")
"""Tables whose rows are useless once ``expires`` has passed (what ``purge`` clears)."""


def schema(dialect: str, prefix: str = "") -> str:
    """The DDL of the auth tables for ``"sqlite"`` or ``"postgres"``, idempotent."""
    return SCHEMA.format(p=prefix, **TYPES[dialect])


class Change(NamedTuple):
    """What one write statement did: rows it touched and what it returned."""

    touched: int
    rows: list[Row]


class Runner(Protocol):
    """How one dialect runs a statement; the only thing that differs between them."""

    async def rows(self, sql: str, params: Params) -> list[Row]:
        """Run a read and return every row."""
        ...

    async def change(self, sql: str, params: Params) -> Change:
        """Run one write statement as its own committed transaction."""
        ...

    async def close(self) -> None: ...


def _upsert(table: str, columns: Sequence[str], replace: bool) -> str:
    """``INSERT`` that returns the key when it wrote, nothing when it yielded."""
    key = columns[0]
    if replace:
        sets = ", ".join(f"{column} = excluded.{column}" for column in columns[1:])
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    marks = ", ".join("?" for _ in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "  # noqa: S608 (fixed names)
        f"ON CONFLICT ({key}) {action} RETURNING {key}"
    )


CLIENT = ("client_id", "kind", "scopes", "redirect_uris", "jwks", "jwks_url", "created", "disabled")
USER = (
    "username",
    "password_hash",
    "totp_secret",
    "fhir_user",
    "role",
    "end_date",
    "disabled",
    "created",
)
LOGIN = ("username", "failures", "locked_until", "last_totp_step")
REFRESH = ("token_hash", "family", "client_id", "subject", "grant_data", "expires", "used")
PUT_CLIENT = {flag: _upsert("auth_client", CLIENT, flag) for flag in (False, True)}
PUT_USER = {flag: _upsert("auth_user", USER, flag) for flag in (False, True)}
SAVE_LOGIN = _upsert("auth_login", LOGIN, replace=True)
# Insert if absent (the caller's old state is then the default), update only if the
# row still holds the old state; RETURNING tells whether this caller won.
SWAP_LOGIN = (
    "INSERT INTO auth_login (username, failures, locked_until, last_totp_step) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET "
    "failures = excluded.failures, locked_until = excluded.locked_until, "
    "last_totp_step = excluded.last_totp_step WHERE auth_login.failures = ? "
    "AND auth_login.locked_until = ? AND auth_login.last_totp_step = ? RETURNING username"
)
PUT_REFRESH = _upsert("auth_refresh", REFRESH, replace=False)
PUT_GRANT = _upsert("auth_grant", ("key", "payload", "expires"), replace=True)
GET_CLIENT = f"SELECT {', '.join(CLIENT)} FROM auth_client"  # noqa: S608 (fixed names)
GET_USER = f"SELECT {', '.join(USER)} FROM auth_user"  # noqa: S608 (fixed names)
# An expired marker is claimed again; a live one makes the WHERE false, so no row.
USE_ONCE = (
    "INSERT INTO auth_once (key, expires) VALUES (?, ?) ON CONFLICT (key) "
    "DO UPDATE SET expires = excluded.expires WHERE auth_once.expires <= ? RETURNING key"
)
TAKE_GRANT = "DELETE FROM auth_grant WHERE key = ? AND expires > ? RETURNING payload"
PEEK_GRANT = "SELECT payload FROM auth_grant WHERE key = ? AND expires > ?"
USE_REFRESH = (
    f"UPDATE auth_refresh SET used = TRUE WHERE token_hash = ? AND NOT used "  # noqa: S608
    f"RETURNING {', '.join(REFRESH)}"
)
GET_REFRESH = f"SELECT {', '.join(REFRESH)} FROM auth_refresh WHERE token_hash = ?"  # noqa: S608
# A block is never shortened: a later, shorter block must not lift an earlier one.
BLOCK = (
    "INSERT INTO auth_block (key, expires) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
    "expires = CASE WHEN excluded.expires > auth_block.expires "
    "THEN excluded.expires ELSE auth_block.expires END"
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _client_row(client: ClientRecord) -> Row:
    jwks = None if client.jwks is None else _json(client.jwks)
    return (
        client.client_id,
        client.kind,
        _json(client.scopes),
        _json(client.redirect_uris),
        jwks,
        client.jwks_url,
        client.created,
        client.disabled,
    )


def _client(row: Row) -> ClientRecord:
    client_id, kind, scopes, uris, jwks, jwks_url, created, disabled = row
    return ClientRecord(
        client_id,
        kind,
        tuple(orjson.loads(scopes)),
        tuple(orjson.loads(uris)),
        None if jwks is None else orjson.loads(jwks),
        jwks_url,
        float(created),
        bool(disabled),
    )


def _payload(text: str) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(text)
    return payload


def _user(row: Row) -> UserRecord:
    username, password_hash, totp_secret, fhir_user, role, end_date, disabled, created = row
    return UserRecord(
        username,
        password_hash,
        totp_secret,
        fhir_user,
        role,
        end_date,
        bool(disabled),
        float(created),
    )


def _refresh_row(record: RefreshRecord) -> Row:
    head = (record.token_hash, record.family, record.client_id, record.subject)
    return (*head, _json(record.grant), record.expires, record.used)


def _refresh(row: Row, used: bool) -> RefreshRecord:
    token_hash, family, client_id, subject, grant, expires, _ = row
    return RefreshRecord(
        token_hash, family, client_id, subject, _payload(grant), float(expires), used
    )


def _conflict(what: str) -> RempartError:
    return RempartError(Category.CONFLICT, f"The {what} already exists")


class SqlAuthStore:
    """:class:`AuthStore` over any :class:`Runner`."""

    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def put_client(self, client: ClientRecord, *, replace: bool = False) -> None:
        written = await self._run.change(PUT_CLIENT[replace], _client_row(client))
        if not written.rows:
            raise _conflict("client")

    async def client(self, client_id: str) -> ClientRecord | None:
        rows = await self._run.rows(f"{GET_CLIENT} WHERE client_id = ?", (client_id,))
        return _client(rows[0]) if rows else None

    async def clients(self) -> list[ClientRecord]:
        return [_client(row) for row in await self._run.rows(f"{GET_CLIENT} ORDER BY 1", ())]

    async def disable_client(self, client_id: str) -> bool:
        sql = "UPDATE auth_client SET disabled = TRUE WHERE client_id = ? RETURNING client_id"
        return bool((await self._run.change(sql, (client_id,))).rows)

    async def put_user(self, user: UserRecord, *, replace: bool = False) -> None:
        fields = asdict(user)
        row = tuple(fields[column] for column in USER)
        if not (await self._run.change(PUT_USER[replace], row)).rows:
            raise _conflict("user")

    async def user(self, username: str) -> UserRecord | None:
        rows = await self._run.rows(f"{GET_USER} WHERE username = ?", (username,))
        return _user(rows[0]) if rows else None

    async def users(self) -> list[UserRecord]:
        return [_user(row) for row in await self._run.rows(f"{GET_USER} ORDER BY 1", ())]

    async def disable_user(self, username: str) -> bool:
        sql = "UPDATE auth_user SET disabled = TRUE WHERE username = ? RETURNING username"
        return bool((await self._run.change(sql, (username,))).rows)

    async def login_state(self, username: str) -> LoginState:
        sql = "SELECT failures, locked_until, last_totp_step FROM auth_login WHERE username = ?"
        rows = await self._run.rows(sql, (username,))
        if not rows:
            return LoginState()
        failures, locked_until, step = rows[0]
        return LoginState(int(failures), float(locked_until), int(step))

    async def save_login_state(self, username: str, state: LoginState) -> None:
        row = (username, state.failures, state.locked_until, state.last_totp_step)
        await self._run.change(SAVE_LOGIN, row)

    async def swap_login_state(self, username: str, old: LoginState, new: LoginState) -> bool:
        row = (
            username,
            *(new.failures, new.locked_until, new.last_totp_step),
            *(old.failures, old.locked_until, old.last_totp_step),
        )
        return bool((await self._run.change(SWAP_LOGIN, row)).rows)

    async def use_once(self, key: str, expires: float) -> bool:
        written = await self._run.change(USE_ONCE, (key, expires, time.time()))
        return bool(written.rows)

    async def put_grant(self, key: str, payload: dict[str, Any], expires: float) -> None:
        await self._run.change(PUT_GRANT, (key, _json(payload), expires))

    async def peek_grant(self, key: str) -> dict[str, Any] | None:
        rows = await self._run.rows(PEEK_GRANT, (key, time.time()))
        return _payload(rows[0][0]) if rows else None

    async def take_grant(self, key: str) -> dict[str, Any] | None:
        rows = (await self._run.change(TAKE_GRANT, (key, time.time()))).rows
        return _payload(rows[0][0]) if rows else None

    async def put_refresh(self, record: RefreshRecord) -> None:
        # Never overwritten: that would set a used (rotated) token back to unused.
        if not (await self._run.change(PUT_REFRESH, _refresh_row(record))).rows:
            raise _conflict("refresh token")

    async def use_refresh(self, token_hash: str) -> RefreshRecord | None:
        """The token as it was: ``used=False`` for exactly one caller; expiry is not checked."""
        claimed = (await self._run.change(USE_REFRESH, (token_hash,))).rows
        if claimed:
            return _refresh(claimed[0], used=False)
        # Nothing claimed: unknown, or already used (``used`` is never cleared).
        rows = await self._run.rows(GET_REFRESH, (token_hash,))
        return _refresh(rows[0], used=True) if rows else None

    async def revoke_family(self, family: str) -> None:
        await self._run.change("UPDATE auth_refresh SET used = TRUE WHERE family = ?", (family,))

    async def block(self, key: str, until: float) -> None:
        await self._run.change(BLOCK, (key, until))

    async def blocked(self, keys: Sequence[str], now: float) -> bool:
        if not keys:
            return False
        marks = ", ".join("?" for _ in keys)
        sql = f"SELECT 1 FROM auth_block WHERE key IN ({marks}) AND expires > ? LIMIT 1"  # noqa: S608
        return bool(await self._run.rows(sql, (*keys, now)))

    async def purge(self, now: float) -> int:
        total = 0
        for table in EXPIRING:
            sql = f"DELETE FROM {table} WHERE expires <= ?"  # noqa: S608 (fixed names)
            total += (await self._run.change(sql, (now,))).touched
        return total

    async def close(self) -> None:
        await self._run.close()


class DatabaseReplayCache:
    """:class:`~rempart.storage.auth_ports.ReplayCache` kept in the auth database.

    It borrows the store: ``close`` leaves it open for its owner to close.
    """

    def __init__(self, store: AuthStore) -> None:
        self._store = store

    async def use_once(self, key: str, expires: float) -> bool:
        return await self._store.use_once(key, expires)

    async def close(self) -> None:
        return None
