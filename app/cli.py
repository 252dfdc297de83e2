"""`flask crm …`: thin callers of the services."""
from __future__ import annotations

import os
import secrets

import click
from flask.cli import AppGroup
from sqlalchemy import select

crm_cli = AppGroup("crm", help="Guishu administration.")


def _generated_password(name: str) -> tuple[str, bool]:
    """A password from the environment, else a new random one (second value: generated)."""
    value = os.environ.get(name, "")
    if value:
        return value, False
    return secrets.token_urlsafe(12), True


@crm_cli.command("init")
@click.option("--demo", is_flag=True, help="Also build the demo organisation and customers.")
def init(demo: bool) -> None:
    """Apply migrations, sync roles, seed the default policy and pool, create the first admin."""
    from flask_migrate import upgrade

    from app.services import bootstrap

    upgrade()
    result = bootstrap.initialise()
    click.echo(f"数据库已迁移；角色已同步：{', '.join(result['roles'])}")
    if result.get("admin_created"):
        password, generated = _generated_password("GUISHU_ADMIN_PASSWORD")
        if demo and not os.environ.get("GUISHU_ADMIN_PASSWORD"):
            password, generated = bootstrap.demo_password()
        bootstrap.create_admin(result["admin_username"], password)
        click.echo(f"管理员账号：{result['admin_username']}" +
                   (f"  密码（仅显示一次）：{password}" if generated else ""))
    if demo:
        password, generated = bootstrap.demo_password()
        from app.services.demo import build_demo

        summary = build_demo(password)
        if summary.get("created"):
            click.echo(f"演示数据：{summary}")
            if generated:
                click.echo(f"演示账号密码（仅显示一次，亦保存在 instance/demo_password）：{password}")
        else:
            click.echo("演示数据已存在，跳过。")


@crm_cli.command("export")
@click.option("--user", "username", required=True, help="Export what this user may see.")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8-sig"), default="-")
def export(username: str, output) -> None:
    """CSV of the customers in USER's data scope."""
    from app.extensions import db
    from app.models import User
    from app.services import exports

    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no such user: {username}")
    click.echo(f"{exports.write_csv(user, output)} customers", err=True)


@crm_cli.command("refresh-keys")
def refresh_keys() -> None:
    """Recompute stale normalised phone/email keys now (the nightly job does the same)."""
    from jobs.customers import refresh_normalised_keys

    click.echo(f"{refresh_normalised_keys()} customers re-normalised")


@crm_cli.command("sweep")
@click.option("--dry-run", is_flag=True, help="Only print what would be reclaimed and why.")
def sweep(dry_run: bool) -> None:
    """Reclaim due customers to their pools now (the nightly job does the same)."""
    from app.services.reclaim import sweep as run_sweep

    result = run_sweep(dry_run=dry_run)
    if dry_run:
        for row in result.due:
            click.echo(f"customer {row['customer_id']}  owner {row['owner_id']}  "
                       f"{row['rule']} ({row['days']} days): {row['reason']}")
        click.echo(f"{len(result.due)} customers would be reclaimed", err=True)
    else:
        by_rule = ", ".join(f"{k} {v}" for k, v in sorted(result.by_rule.items())) or "none"
        click.echo(f"{result.reclaimed} customers reclaimed ({by_rule})")


@crm_cli.command("classify")
def classify() -> None:
    """Recompute every customer's category (potential / active / silent) and grade now."""
    from app.services.classification import classify as run_classify

    click.echo(f"{run_classify()} customers classified")


@crm_cli.command("care")
@click.option("--send/--no-send", default=True, show_default=True,
              help="Also deliver what is due now (e-mail / SMS / owners' tasks).")
@click.option("--date", "on", default=None, metavar="YYYY-MM-DD",
              help="Plan as if today were this day (default: today in GUISHU_TIMEZONE).")
def care_command(send: bool, on) -> None:
    """Plan birthday and holiday greetings into the outbox, then send what is due (the
    scheduler does both on its own: care_plan daily, care_deliver every 10 minutes)."""
    import datetime as dt

    from app.services import care

    try:
        today = dt.date.fromisoformat(on) if on else None
    except ValueError:
        raise click.BadParameter("date must be YYYY-MM-DD", param_hint="--date")
    planned = care.plan(today)
    click.echo(f"planned: {planned.birthdays} birthday and {planned.holidays} holiday messages"
               + (f" ({', '.join(planned.occasions)})" if planned.occasions else ""))
    if send:
        s = care.deliver().summary()
        click.echo(f"delivered: {s['sent']} sent, {s['retrying']} to retry, {s['failed']} failed"
                   + (f", {s['interrupted']} interrupted earlier" if s["interrupted"] else ""))
