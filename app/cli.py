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


def _kept_where() -> str:
    from app.services import bootstrap

    if os.environ.get("GUISHU_DEMO_PASSWORD"):
        return "（来自 GUISHU_DEMO_PASSWORD）"
    return f"（保存在 {bootstrap.demo_password_path()}，`make start` 启动时也会显示）"


@crm_cli.command("init")
@click.option("--demo", is_flag=True, help="Also build the demo organisation and customers.")
def init(demo: bool) -> None:
    """Apply migrations, sync roles, seed the default policy and pool, create the first admin."""
    from flask_migrate import upgrade

    from app.services import bootstrap

    upgrade()
    result = bootstrap.initialise()
    from app.security import role_label

    click.echo(f"数据库已迁移；角色已同步：{', '.join(role_label(r) for r in result['roles'])}")
    if result.get("admin_created"):
        password, generated = _generated_password("GUISHU_ADMIN_PASSWORD")
        shared = demo and not os.environ.get("GUISHU_ADMIN_PASSWORD")
        if shared:
            password, generated = bootstrap.demo_password()
        bootstrap.create_admin(result["admin_username"], password)
        # A generated admin password is kept nowhere, unless it is the demo accounts' one.
        if shared:
            note = "  密码与演示账号相同（见下）"
        else:
            note = f"  密码（仅显示这一次，请记下）：{password}" if generated else ""
        click.echo(f"管理员账号：{result['admin_username']}" + note)
    if demo:
        password, _ = bootstrap.demo_password()
        from app.demo import build_demo

        summary = build_demo(password)
        if summary.get("created"):
            click.echo(f"演示数据：{summary}")
            click.echo(f"演示账号密码：{password}" + _kept_where())
        else:
            click.echo("演示数据已存在，跳过。")


@crm_cli.command("export")
@click.option("--user", "username", required=True, help="Export what this user may see.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="File to write (default: standard output, CSV only).")
def export(username: str, fmt: str, output: str) -> None:
    """The customers in USER's data scope, contacts masked where USER may not see them."""
    from app.services import exports

    user = _user_named(username)
    if fmt == "xlsx":
        if output == "-":
            raise click.UsageError("--format xlsx needs --output FILE")
        data, n = exports.xlsx_bytes(user)
        with open(output, "wb") as f:
            f.write(data)
    else:
        with click.open_file(output, "w", encoding="utf-8-sig") as f:
            n = exports.write_csv(user, f)
    click.echo(f"{n} customers", err=True)


def _user_named(username: str):
    from app.extensions import db
    from app.models import User

    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no such user: {username}")
    return user


@crm_cli.command("import")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "username", required=True, help="Import as this user (their rights).")
@click.option("--pool", "pool_name", default=None, help="Into this pool (default: the default "
              "pool; with --rules, what no rule places).")
@click.option("--rules", is_flag=True, help="Place customers through the assignment rules.")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="Column mapping, e.g. --map name=公司名称 (repeatable; default: guessed "
                   "from the header row).")
@click.option("--resume", "resume_id", type=int, default=None, metavar="BATCH",
              help="Continue an interrupted import after its last saved row.")
def import_command(file, username, pool_name, rules, maps, resume_id) -> None:
    """Import customers from a CSV (UTF-8 / BOM / GBK) or XLSX file, with a progress bar;
    bad and duplicate rows go to the batch's error report."""
    from pathlib import Path

    from tqdm import tqdm

    from app.extensions import db
    from app.models import Pool
    from app.services import import_mapping, import_run, imports
    from app.services.errors import GuishuError, ValidationFailed
    from app.services.ownership import default_pool

    user = _user_named(username)
    try:
        if resume_id is not None:
            batch = imports.get_batch(user, resume_id)
        elif file is None:
            raise click.UsageError("FILE is required (or --resume BATCH)")
        else:
            batch = import_mapping.upload(user, Path(file).name, Path(file).read_bytes())
            mapping = dict(batch.mapping or {})
            for item in maps:
                field, sep, column = item.partition("=")
                if not sep:
                    raise click.BadParameter(f"{item!r}: use FIELD=COLUMN", param_hint="--map")
                mapping[field.strip()] = column.strip()
            pool = default_pool() if pool_name is None and not rules else (
                db.session.execute(select(Pool).where(Pool.name == pool_name,
                                                    Pool.record_type == "customer")).scalar_one_or_none()
                if pool_name else None)
            if pool_name and pool is None:
                raise click.ClickException(f"no such pool: {pool_name}")
            click.echo("mapping: " + ", ".join(f"{f}={c}" for f, c in mapping.items()), err=True)
            import_mapping.configure(user, batch.id, mapping, "rules" if rules else "pool",
                                     pool.id if pool else None)
            batch = imports.get_batch(user, batch.id)
    except ValidationFailed as exc:
        raise click.ClickException("; ".join(f"{k}: {v}" for k, v in exc.fields.items()))
    except GuishuError as exc:
        raise click.ClickException(exc.message)
    bar = tqdm(total=batch.total_rows, initial=batch.processed, unit="行",
               file=click.get_text_stream("stderr"))

    def progress(done, total):
        bar.update(done - bar.n)

    batch = import_run.run(batch.id, progress=progress)
    bar.close()
    click.echo(f"batch {batch.id}: {batch.inserted} inserted, {batch.duplicates} duplicates, "
               f"{batch.invalid} invalid ({batch.status})")
    if batch.duplicates or batch.invalid:
        click.echo(f"error report: /imports/{batch.id}/errors.csv", err=True)


@crm_cli.command("requeue-imports")
def requeue_imports() -> None:
    """Queue again the imports started while Redis was down (the periodic job requeue_imports
    does the same every 5 minutes)."""
    from app.redis_conn import forget_status, redis_available
    from app.services.import_run import requeue_stranded

    batches = requeue_stranded()
    click.echo(f"{len(batches)} import batches queued again"
               + (f": {', '.join(f'#{b}' for b in batches)}" if batches else ""))
    forget_status()
    if not redis_available():
        raise click.ClickException("Redis is unreachable: the queued imports wait for it")


@crm_cli.command("refresh-keys")
def refresh_keys() -> None:
    """Recompute stale normalised phone/email keys now (the nightly job does the same)."""
    from app.services.customers import refresh_all_normalised_keys

    click.echo(f"{refresh_all_normalised_keys()} customers re-normalised")


@crm_cli.command("search-rebuild")
def search_rebuild() -> None:
    """Rewrite every customer's quick-search keys (names and contacts' names, in bigrams)."""
    from app.extensions import db
    from app.services.search import rebuild_all

    done = rebuild_all(db.session.connection(),
                       progress=lambda n: click.echo(f"{n} customers indexed", err=True))
    db.session.commit()
    click.echo(f"{done} customers indexed for search")


@crm_cli.command("match-keys-rebuild")
def match_keys_rebuild() -> None:
    """Rewrite every customer's dedupe blocking entries (after a change of the matcher's
    blocking keys; saves keep them right otherwise)."""
    from app.extensions import db
    from app.services.match_keys import rebuild_all

    done = rebuild_all(db.session.connection(),
                       progress=lambda n: click.echo(f"{n} customers indexed", err=True))
    db.session.commit()
    click.echo(f"{done} customers indexed for dedupe matching")


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


@crm_cli.command("value-review")
def value_review_command() -> None:
    """Run the value re-evaluation now (the scheduler runs it weekly): new proposals per kind,
    and those expired because their finding is gone. It proposes; managers decide."""
    from app.services.errors import tr
    from app.services.value_review import KIND_LABELS, review

    counts = review()
    for kind, label in KIND_LABELS.items():
        click.echo(f"{tr(label)}：{counts.get(kind, 0)}")
    click.echo(f"已过期：{counts.get('expired', 0)}")


@crm_cli.command("risk-train")
def risk_train_command() -> None:
    """Retrain the risk models now (the scheduler does it nightly) and print the backtest:
    both AUCs on the last 60 days and whether the workbench shows the model."""
    from app.services import risk
    from app.services.errors import tr

    for bt in risk.train():
        click.echo(f"{tr(risk.KIND_LABELS[bt.kind])}: AUC {bt.model_auc:.3f} / "
                   f"{tr('baseline')} {bt.baseline_auc:.3f}; train {bt.n_train} "
                   f"({bt.positives_train}+), test {bt.n_test} ({bt.positives_test}+) "
                   f"→ {bt.verdict}")


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


@crm_cli.command("stats-refresh")
@click.option("--rebuild", is_flag=True,
              help="Recount every aggregate from scratch (as the nightly job does).")
def stats_refresh(rebuild) -> None:
    """Bring the dashboards' aggregates up to date: the rows added since the last run, or
    (--rebuild) everything again."""
    import time

    from app.services import stat_aggregates

    started = time.perf_counter()
    counted = stat_aggregates.rebuild() if rebuild else stat_aggregates.refresh()
    ids = ", ".join(f"{source} {n:,}" for source, n in counted.items())
    click.echo(f"{'rebuilt' if rebuild else 'refreshed'} ({ids} ids) in "
               f"{time.perf_counter() - started:.1f} s")


@crm_cli.command("dedupe-scan")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default=None,
              help="Also write customer_id, cluster_id, score, reasons as CSV.")
def dedupe_scan(output) -> None:
    """Find duplicate clusters across all customers for review (replaces the open clusters;
    dismissed pairs are not proposed again)."""
    from app.services.dedupe_scan import scan, write_csv

    def progress(done, total):
        click.echo(f"  {done:,} / {total:,} customers", err=True)

    result = scan(progress=progress)
    if output is not None:
        write_csv(result.rows, output)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.by_kind.items())) or "none"
    click.echo(f"{result.clusters} clusters, {result.members} customers "
               f"({kinds}) from {result.customers:,} customers in {result.seconds:.1f} s")


@crm_cli.command("dedupe-train")
@click.option("--user", "username", default=None,
              help="Record this user as the trainer (in the model and the audit log).")
def dedupe_train(username) -> None:
    """Re-estimate the duplicate matcher's weights on this deployment's own customers, without
    labels (blocking pairs + EM), and make the result the active model."""
    from app.services.matching.fields import FIELDS
    from app.services.matching.training import train_on_customers

    actor_id = _user_named(username).id if username else None
    model, stats, row_id = train_on_customers(actor_id)
    click.echo(f"查重模型 #{row_id}：{stats['records']:,} 个客户，{stats['pairs']:,} 个候选对")
    for kind, fields in FIELDS.items():
        info = stats["types"][kind]
        how = "沿用默认模型（候选对太少）" if info.get("default") else \
            f"重复占比 {info['prior']:.4f}"
        click.echo(f"{'企业' if kind == 'company' else '个人'}：{info['pairs']:,} 个候选对，{how}")
        table = model.weights(kind)
        for j, field in enumerate(fields):
            levels = "  ".join(f"{level} m={model.m[kind][j][i]:.4f} u={model.u[kind][j][i]:.6f}"
                               f" ({table[j, i]:+.1f})" for i, level in enumerate(field.levels))
            click.echo(f"  {field.name:13} {levels}")
    click.echo(f"阈值：关联 ≥ {model.link_threshold:.1f}，复核 ≥ {model.review_threshold:.1f}")


@crm_cli.command("dedupe-clusters")
@click.option("--user", "username", required=True, help="Review as this user.")
def dedupe_clusters(username: str) -> None:
    """List the open duplicate clusters of the last scan, best score first."""
    from app.services import dedupe_review
    from app.services.errors import GuishuError

    user = _user_named(username)
    try:
        page, shown = 0, 0
        while True:
            clusters, total = dedupe_review.open_clusters(user, page)
            for c in clusters:
                _, members = dedupe_review.cluster(user, c.id)
                names = "; ".join(f"#{m.customer_id} {m.customer.name if m.customer else '—'}"
                                  f" ({m.score})" for m in members)
                click.echo(f"cluster {c.id}  best {c.best_score}  [{c.reasons}]  {names}")
            shown += len(clusters)
            page += 1
            if not clusters or shown >= total:
                break
    except GuishuError as exc:
        raise click.ClickException(exc.message)
    click.echo(f"{shown} open clusters", err=True)


@crm_cli.command("dedupe-merge")
@click.argument("cluster_id", type=int)
@click.option("--user", "username", required=True, help="Merge as this user.")
@click.option("--keep", "survivor", type=int, required=True, help="The customer id to keep.")
@click.option("--merge", "merged", type=int, multiple=True,
              help="A member to merge into it (repeatable; default: every other member).")
@click.option("--take", "takes", multiple=True, metavar="FIELD=ID",
              help="Whose value wins for a field, e.g. --take mobile=42 (default: the kept "
                   "record's).")
def dedupe_merge(cluster_id: int, username: str, survivor: int, merged, takes) -> None:
    """Merge a cluster's members into the kept customer (members left out are remembered as
    not duplicates of it)."""
    from app.services import dedupe_review
    from app.services.errors import GuishuError

    user = _user_named(username)
    choices = {}
    for item in takes:
        field, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise click.BadParameter(f"{item!r}: use FIELD=ID", param_hint="--take")
        choices[field.strip()] = int(value)
    try:
        if not merged:
            _, members = dedupe_review.cluster(user, cluster_id)
            merged = [m.customer_id for m in members if m.customer_id != survivor]
        records = dedupe_review.merge_cluster(user, cluster_id, survivor, list(merged),
                                              choices)
    except GuishuError as exc:
        raise click.ClickException(exc.message)
    click.echo(f"merged {', '.join(f'#{r.merged_id}' for r in records)} into #{survivor}")


@crm_cli.command("dedupe-dismiss")
@click.argument("cluster_id", type=int)
@click.option("--user", "username", required=True)
def dedupe_dismiss(cluster_id: int, username: str) -> None:
    """Mark a cluster "not duplicates": its pairs are not proposed again."""
    from app.services import dedupe_review
    from app.services.errors import GuishuError

    try:
        dedupe_review.dismiss(_user_named(username), cluster_id)
    except GuishuError as exc:
        raise click.ClickException(exc.message)
    click.echo(f"cluster {cluster_id} dismissed")


@crm_cli.command("merge-undo")
@click.argument("merge_id", type=int)
@click.option("--user", "username", required=True)
def merge_undo(merge_id: int, username: str) -> None:
    """Undo a merge (within 30 days, newest first for each kept customer)."""
    from app.services import merge
    from app.services.errors import GuishuError

    try:
        record = merge.undo(_user_named(username), merge_id)
    except GuishuError as exc:
        raise click.ClickException(exc.message)
    click.echo(f"merge {merge_id} undone: customer #{record.merged_id} is back")


# --- the work calendar (工作日历) -------------------------------------------------------------
@crm_cli.group("calendar")
def calendar_cli() -> None:
    """The work calendar: holidays and make-up working days (调休)."""


@calendar_cli.command("seed")
@click.option("--year", type=int, multiple=True,
              help="A year to seed (repeatable); default: this year and next.")
def calendar_seed(year: tuple[int, ...]) -> None:
    """Seed holidays and 调休 working days from the `holidays` package (idempotent; days an
    admin edited are kept)."""
    from app.services import work_calendar
    from app.services.errors import ValidationFailed

    try:
        done = ({y: work_calendar.seed_year(y) for y in year} if year
                else work_calendar.seed_default_years())
    except ValidationFailed as exc:
        raise click.UsageError("; ".join(exc.fields.values())) from None
    for y, counts in sorted(done.items()):
        click.echo(f"{y}: {counts['added']} days added, {counts['updated']} updated")


@crm_cli.command("sla-sweep")
def sla_sweep() -> None:
    """Run the SLA job now: warnings, breaches, escalation (the 5-minute job does the same)."""
    from app.services.sla_sweep import sweep as run_sweep

    click.echo(", ".join(f"{k} {v}" for k, v in run_sweep().summary().items()))


@crm_cli.group("cti")
def cti_cli() -> None:
    """Call centre (CTI)."""


@cti_cli.command("simulate")
@click.option("--to", "username", required=True, help="The agent (a user with an agent number).")
@click.option("--caller", default=None,
              help="The calling number (default: a customer of the agent's).")
@click.option("--outcome", type=click.Choice(["answered", "missed"]), default="answered")
@click.option("--talk", type=click.IntRange(0, 86400), default=45, show_default=True,
              help="Talk time in seconds of an answered call.")
@click.option("--no-recording", is_flag=True, help="No recording_ready event.")
@click.option("--pause", type=click.FloatRange(0, 60), default=3.0, show_default=True,
              help="Seconds between the events (time to see the card ring).")
@click.option("--ring-only", is_flag=True, help="Only the ringing event (the screen pop).")
def cti_simulate(username, caller, outcome, talk, no_recording, pause, ring_only) -> None:
    """Send one inbound call to an agent as a telephony platform would: ringing (the screen
    pop), answered and hangup (a follow-up) or a missed hangup (a call-back task), then the
    recording — through the same service as the signed event endpoint."""
    from app.services import cti_simulator
    from app.services.errors import GuishuError

    agent = _user_named(username)

    def echo(step, result):
        extra = ""
        if result.followup_id:
            extra = f" → 跟进记录 #{result.followup_id}"
        elif result.callback_task_id:
            extra = f" → 回电待办 #{result.callback_task_id}"
        click.echo(f"{step:16} 通话 #{result.call_pk} {result.state or ''}{extra}")

    try:
        cti_simulator.simulate(agent, caller=caller, outcome=outcome, talk_seconds=talk,
                               recording=not no_recording, pause=pause, ring_only=ring_only,
                               echo=echo)
    except GuishuError as exc:
        raise click.ClickException(str(exc))


@crm_cli.command("ownership-effect")
@click.option("--from", "start", help="Received on or after this business date (YYYY-MM-DD; "
              "default a year ago).")
@click.option("--to", "end", help="Received on or before this business date (default today).")
@click.option("--dept", help="A department (id or name), its sub-departments included.")
@click.option("--days", help="N of 'followed up within N days' (default 7).")
@click.option("--user", "username", help="Evaluate in this user's data scope (default: all).")
def ownership_effect_command(start, end, dept, days, username) -> None:
    """归属效果评估: the evaluation's tables (per rule, strategy, channel, rep, department,
    month and transfer trigger) and the plain-language line per rule."""
    from app.extensions import db
    from app.models import Department
    from app.services import ownership_effect
    from app.services.errors import GuishuError

    if dept and not dept.isdigit():
        found = db.session.execute(select(Department.id).where(Department.name == dept)) \
            .scalar_one_or_none()
        if found is None:
            raise click.BadParameter(f"no such department: {dept}", param_hint="--dept")
        dept = str(found)
    user = _user_named(username) if username else None
    try:
        report = ownership_effect.report(user, start, end, dept, days, unscoped=user is None)
    except GuishuError as exc:
        fields = getattr(exc, "fields", None) or {}
        raise click.ClickException("; ".join(f"{k}: {v}" for k, v in fields.items())
                                   or str(exc))
    f = report.filters
    click.echo(f"归属效果评估 {f.start} – {f.end}")
    for line in report.lines:
        click.echo(f"  {line}")
    for table in ("overall",) + ownership_effect.TABLES:
        title = ownership_effect.TABLE_TITLES.get(table, "")
        click.echo(f"\n== {title or ownership_effect.tr('All customers received')}")
        click.echo(ownership_effect.text_table(report, table), nl=False)
