"""Screenshots of the home page's dashboards over the demo data, drawn offline (issue 20).

Serves the app of this environment (DATABASE_URL / GUISHU_INSTANCE_DIR: a database made by
`flask crm init --demo`) on a loopback port, signs in as each demo user in Debian's Chromium
(Playwright) with every request outside the app refused, waits until every chart is drawn
and saves docs/screenshots/dashboard-<role>.png. The password is GUISHU_DEMO_PASSWORD, else
instance/demo_password.

    GUISHU_INSTANCE_DIR=/tmp/demo .venv/bin/python scripts/dashboard_screenshots.py \
        [--out docs/screenshots] [role ...]      # default: the desk's and marketing's
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
from pathlib import Path

from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USERS = {"rep": "rep1", "manager": "manager1", "admin": "admin",
         "service-agent": "agent1", "service-manager": "svcmgr1", "marketing": "marketing1"}
DEFAULT = ("service-agent", "service-manager", "marketing")


def demo_password() -> str:
    from config import INSTANCE_DIR

    if os.environ.get("GUISHU_DEMO_PASSWORD"):
        return os.environ["GUISHU_DEMO_PASSWORD"]
    return (INSTANCE_DIR / "demo_password").read_text().strip()


def shoot(base: str, roles: list[str], out: Path, password: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            for role in roles:
                context = browser.new_context(viewport={"width": 1280, "height": 1600})
                refused: list[str] = []

                def only_the_app(route, refused=refused):
                    if route.request.url.startswith(base + "/"):
                        route.continue_()
                    else:
                        refused.append(route.request.url)
                        route.abort()

                context.route("**/*", only_the_app)
                page = context.new_page()
                page.goto(f"{base}/login/")
                page.fill("input[name=username]", USERS[role])
                page.fill("input[name=password]", password)
                page.click("input[type=submit], button[type=submit]")
                page.wait_for_url(f"{base}/")
                count = page.locator(".guishu-chart").count()
                page.wait_for_function(
                    "n => document.querySelectorAll('.guishu-chart[data-drawn=\"1\"] canvas')"
                    ".length === n", arg=count, timeout=30000)
                page.wait_for_timeout(1200)  # ECharts' entry animation
                path = out / f"dashboard-{role}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"{path}: {count} charts, {len(refused)} requests refused")
                context.close()
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roles", nargs="*", help=" | ".join(USERS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    unknown = sorted(set(args.roles) - set(USERS))
    if unknown:
        parser.error(f"unknown roles: {', '.join(unknown)} (choose from {', '.join(USERS)})")
    from run import app

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        shoot(f"http://127.0.0.1:{server.server_port}", args.roles or list(DEFAULT), out,
              demo_password())
    finally:
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    main()
