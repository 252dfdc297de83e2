"""Guishu (归属): customer-ownership management. `create_app` is the only way to build the app."""
from __future__ import annotations

import logging
from typing import Optional, Type

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.extensions import appbuilder, csrf, db, migrate
from app.services.ids import BoundedIntConverter


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    # Foreign keys are off by default in SQLite; the ownership invariant depends on them.
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_app(config: Optional[Type] = None, **overrides) -> Flask:
    """config -> db -> appbuilder -> views, APIs and CLI, all registered in one place."""
    from config import Config

    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(config or Config)
    app.config.update(overrides)
    if str(app.config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("postgresql"):
        # Every statement here is a short OLTP read or write: PostgreSQL's JIT compiled the
        # list pages' queries for 400 ms to run them in 1 ms.
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("options", "-c jit=off")
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = dict(options, connect_args=connect_args)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    csrf.init_app(app)
    with app.app_context():
        from app.database import ping_idle_connections, sqlite_index_hints, use_connection_class

        sqlite_index_hints()

        if db.engine.dialect.name == "postgresql":
            use_connection_class(db.engine)
        if app.config.get("DB_PING_IDLE_SECONDS") is not None:
            ping_idle_connections(db.engine, float(app.config["DB_PING_IDLE_SECONDS"]))
        if not getattr(Engine, "_guishu_pragmas", False):
            event.listen(Engine, "connect", _sqlite_pragmas)
            Engine._guishu_pragmas = True
        from app import models as _models  # noqa: F401  (register every table before FAB looks)
        from app.services import match_keys, search

        search.install_listeners()  # the quick search's keys follow every ORM write of a name
        match_keys.install_listeners()  # and the dedupe matcher's every write it reads

        # One AppBuilder object serves every app this process builds (tests build several):
        # forget the views of the previous app so this one registers its own blueprints.
        # Every `<int:…>` route (FAB's and ours) stops at the INTEGER keys: 404 beyond.
        app.url_map.converters["int"] = BoundedIntConverter
        appbuilder.baseviews = []
        appbuilder.menu = None
        appbuilder.init_app(app, db.session)
        from app.views import register_views
        from app.views.errors import register_error_pages
        from app.api import register_apis

        register_views(appbuilder)
        register_error_pages(app)  # before the APIs: they wrap it, JSON under /api/
        register_apis(appbuilder, csrf)

    from app.boundary import register_boundary
    from app.cli import crm_cli
    from app.redis_conn import register_status_banner

    app.cli.add_command(crm_cli)
    app.add_url_rule("/favicon.ico", "favicon", favicon)
    register_status_banner(app)
    register_boundary(app)
    return app


def favicon():
    """Browsers ask every site for /favicon.ico, on every page: answer it, not a 404."""
    from flask import current_app, send_from_directory

    return send_from_directory(current_app.static_folder, "guishu/favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=7 * 24 * 3600)


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"
