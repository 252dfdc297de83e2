"""What keeps tests apart: one instance folder and Redis db per pytest-xdist worker, and the
check that a test leaves no thread, child process or database connection running."""
from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass

import psutil

_engines: list = []
# Threads a library keeps for the whole process by design, not per use: tqdm's monitor of
# its progress bars (started by `flask crm import`).
PROCESS_LIFETIME = {"TMonitor"}
GRACE_SECONDS = 5.0  # a stopped server's thread or a killed worker may take a moment to go


def worker_index() -> int:
    """0 without xdist, else the N of pytest-xdist's gwN."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def own_instance_dir() -> str:
    """GUISHU_INSTANCE_DIR for this worker: a folder of its own under the run's folder (or a
    temporary one), never a developer's instance/."""
    base = os.environ.get("GUISHU_TEST_INSTANCE_BASE")
    if not base:
        base = os.environ.get("GUISHU_INSTANCE_DIR") or tempfile.mkdtemp(prefix="guishu-inst-")
        os.environ["GUISHU_TEST_INSTANCE_BASE"] = base
    folder = os.path.join(base, f"w{worker_index()}")
    os.makedirs(folder, exist_ok=True)
    os.environ["GUISHU_INSTANCE_DIR"] = folder
    return folder


CLAIM_KEY = "guishu:test-run"
CLAIM_SECONDS = 1800  # renewed by every test; a crashed run's claim lapses on its own
_claims: dict[str, str] = {}


def _with_db(url: str, db: int) -> str:
    if url.startswith("unix://"):
        return f"{url.split('?', 1)[0]}?db={db}"
    base, _, last = url.rstrip("/").rpartition("/")
    return f"{base}/{db}" if last.isdigit() else f"{url.rstrip('/')}/{db}"


def own_redis_db(url: str) -> str:
    """A Redis database of this worker's own, emptied: queues and job state of one worker,
    or of another run on the same machine, never reach another. Each worker claims a free
    database (1, 2, …, 15) with a key that expires, and gives it back at the end."""
    import uuid

    import redis

    me = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    preferred = 1 + worker_index() % 15
    for db in [preferred] + [d for d in range(1, 16) if d != preferred]:
        own = _with_db(url, db)
        client = redis.Redis.from_url(own)
        try:
            if client.set(CLAIM_KEY, me, nx=True, ex=CLAIM_SECONDS):
                _claims[own] = me
                empty_redis_db(own)
                return own
        finally:
            client.close()
    raise RuntimeError(f"every Redis database of {url} is claimed by another test run")


def release_redis_db(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        if client.get(CLAIM_KEY) == _claims.pop(url, "").encode():
            client.flushdb()
    finally:
        client.close()


def empty_redis_db(url: str) -> None:
    """Empty the database but keep this run's claim on it. FLUSHDB and the claim go in one
    MULTI/EXEC: between a plain FLUSHDB and SET the database is unclaimed, and another
    worker looking for a free one (all of them try the same order once the preferred ones
    are taken, e.g. by a killed run's claims) takes it too; both then empty each other's
    queues under their tests."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.flushdb()
            if url in _claims:
                pipe.set(CLAIM_KEY, _claims[url], ex=CLAIM_SECONDS)
            pipe.execute()
    finally:
        client.close()


def watch_engine(engine) -> None:
    """Count this engine's checked-out connections in every test's check."""
    _engines.append(engine)


@dataclass(frozen=True)
class Residents:
    threads: frozenset
    children: frozenset
    connections: int

    @classmethod
    def now(cls) -> "Residents":
        me = psutil.Process()
        children = frozenset(p.pid for p in me.children(recursive=True)
                             if p.status() != psutil.STATUS_ZOMBIE)
        threads = frozenset(t for t in threading.enumerate()
                            if t.is_alive() and type(t).__name__ not in PROCESS_LIFETIME)
        return cls(threads, children, sum(e.pool.checkedout() for e in _engines))

    def left_behind_since(self, before: "Residents") -> str:
        """What runs now that did not before, after a grace period; '' when nothing."""
        deadline = time.monotonic() + GRACE_SECONDS
        current = self
        while True:
            threads = current.threads - before.threads
            children = current.children - before.children
            connections = current.connections - before.connections
            if not (threads or children or connections > 0):
                return ""
            if time.monotonic() >= deadline:
                break
            for thread in threads:
                thread.join(timeout=0.1)
            time.sleep(0.05)
            current = Residents.now()
        parts = []
        if threads:
            parts.append("threads " + ", ".join(sorted(t.name for t in threads)))
        if children:
            names = []
            for pid in sorted(children):
                try:
                    names.append(f"{pid} {' '.join(psutil.Process(pid).cmdline()[:3])}")
                except psutil.Error:
                    names.append(str(pid))
            parts.append("processes " + "; ".join(names))
        if connections > 0:
            parts.append(f"{connections} database connection(s) still checked out")
        return "; ".join(parts)
