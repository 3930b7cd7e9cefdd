"""Start and stop the servers under test as subprocesses on loopback.

Each :class:`Storage` is fresh: a new data directory and, for PostgreSQL, a new
schema dropped at the end. Each server runs in its own process group so that the
uvicorn supervisor and its workers are stopped together, and only they.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

import auth

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
POOL_SIZE = 16  # Rempart's StorageSettings.pool_size default; the baseline uses the same


@dataclass
class Storage:
    """Where one measured server pair keeps its data."""

    backend: str
    data_dir: Path
    pg_url: str | None
    schema: str | None

    @property
    def baseline_database(self) -> str:
        return self.pg_url or str(self.data_dir / "rempart.db")

    def drop(self) -> None:
        if self.pg_url and self.schema:
            with psycopg.connect(self.pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def fresh_storage(backend: str, pg_url: str) -> Storage:
    data_dir = Path(tempfile.mkdtemp(prefix=f"rempart-bench-{backend}-"))
    if backend == "sqlite":
        return Storage(backend, data_dir, None, None)
    schema = f"rempart_bench_{os.getpid()}_{secrets.token_hex(4)}"
    return Storage(backend, data_dir, pg_url, schema)


class Server:
    """One uvicorn-served process tree, its log in the storage directory.

    ``headers`` go on every request to it: Rempart's bearer token (see ``auth.py``);
    none for the baseline, which has no authorization.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = int(argv[argv.index("--port") + 1])
        self.headers: dict[str, str] = {}
        self._log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            if _answers(self.port, path):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited (code {self.process.returncode})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])


def start_rempart(storage: Storage, workers: int) -> Server:
    port = free_port()
    argv = [
        str(VENV_BIN / "rempart"),
        "serve",
        "--data-dir",
        str(storage.data_dir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = dict(os.environ)
    # The limiter is charged on every request (its cost is part of what is measured)
    # but with budgets no load test reaches: a benchmark measures throughput, not 429s.
    for name in ("IP", "AUTH", "CLIENT", "USER"):
        env.setdefault(f"REMPART_RATELIMIT_{name}_PER_MINUTE", str(10**9))
    if storage.pg_url:
        argv += ["--database", storage.pg_url]
        env["REMPART_PG_SCHEMA"] = str(storage.schema)
    server = Server("rempart", argv, env, storage.data_dir / "rempart.log")
    server.wait_ready("/healthz")
    # The signing key exists once the server is ready, in the data directory for
    # either backend; the token's issuer and audience are the base the bench calls.
    token = auth.bench_token(storage.data_dir, f"http://{HOST}:{port}/fhir")
    server.headers = auth.bearer(token)
    return server


def start_baseline(storage: Storage, workers: int) -> Server:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH_DIR),
        "baseline_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
        "--lifespan",
        "on",
        *uvicorn_impl_flags(),
    ]
    env = dict(os.environ, BENCH_DATABASE=storage.baseline_database, BENCH_POOL_SIZE=str(POOL_SIZE))
    if storage.schema:
        env["BENCH_PG_SCHEMA"] = storage.schema
    server = Server("baseline", argv, env, storage.data_dir / "baseline.log")
    server.wait_ready("/")
    return server


def uvicorn_impl_flags() -> list[str]:
    """httptools and uvloop when installed: what Rempart's uvicorn "auto" picks too."""
    flags = []
    for module, flag in (("httptools", "--http=httptools"), ("uvloop", "--loop=uvloop")):
        if _importable(module):
            flags.append(flag)
    return flags


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status < 500
    except OSError:
        return False
    finally:
        conn.close()
