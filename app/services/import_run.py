"""Running an import: queue the job, then read the file's remaining rows chunk by chunk.

Every row goes through the same validation as the customer form (`clean_customer_data`) and
the same dedupe rules as every other entry path — against the table and against the rows of
the file before it. Any match, blocking or warning, keeps the row out: an import has nobody
to confirm a warning, so the row goes to the error report naming the match, and staff add
it by hand (with "仍然保存") if it really is another customer. That is also why importing the
same file twice inserts nothing the second time.

A run works in chunks of CHUNK_ROWS rows. Each chunk commits its customers, their ownership
rows and 'created' events, its problem rows and the batch's resume point (`next_line`) in
one transaction, after taking the batch row's lock with "UPDATE … WHERE next_line = the
point I started from": a worker killed mid-chunk loses only an uncommitted chunk, and two
runners of one batch cannot both insert the same rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from flask import current_app
from sqlalchemy import func, insert, select, text, update

from app.extensions import db
from app.models import Customer, ImportBatch, ImportProblem, Ownership, User
from app.models.customer import utcnow
from app.queue import enqueue
from app.services import audit, bulk, caps, dedupe_bulk, match_keys, ownership, search
from app.services.customers import clean_customer_data
from app.services.errors import NotFound, ValidationFailed, tr
from app.services.import_files import BadLine, open_source
from app.services.import_mapping import (CUSTOMER_TYPE_WORDS, FIELD_LABELS, LEAD_FIELD_LABELS,
                                         LEAD_SOURCE_WORDS)
from app.services.imports import get_batch

CHUNK_ROWS = 1000
JOB_TIMEOUT = 6 * 3600  # seconds one run of the import job may take before RQ stops it

# The reason of every event an import writes starts so: the ownership-effect evaluation
# (app.services.ownership_effect) tells imported customers by it.
IMPORT_REASON_PREFIX = "批量导入 #"


def start(actor: User, batch_id: int, queue: str = "default") -> ImportBatch:
    """Queue the import job (also resumes a batch whose worker died). Without Redis the batch
    is left queued without a job, which `requeue_stranded` queues once Redis is back (or
    `flask crm import --resume ID` runs now); the refusal says so."""
    batch = get_batch(actor, batch_id)
    if batch.status not in ("queued", "running", "failed"):
        raise ValidationFailed({"batch": tr("This batch is %(status)s and cannot start importing",
                                          status=batch.status_label)})
    job = enqueue("jobs.imports.run_import", batch.id, queue=queue, job_timeout=JOB_TIMEOUT)
    if job is None:
        audit.record(actor.id, "start", "import_batch", batch.id,
                     {"status": (batch.status, "queued"), "job": (batch.job_id, None)})
        batch.status, batch.error, batch.job_id = "queued", None, None
        db.session.commit()
        raise ValidationFailed({"batch": tr(
            "Background jobs are paused (Redis cannot be reached): this batch is queued and "
            "starts when Redis is back; or run flask crm import --resume %(id)s on the server "
            "to import now", id=batch.id)})
    batch.job_id = job.id
    if batch.status == "failed":
        batch.status, batch.error = "queued", None
    audit.record(actor.id, "start", "import_batch", batch.id, {"job": (None, job.id)})
    db.session.commit()
    return batch


def requeue_stranded(queue: str = "default") -> list[int]:
    """Queue the job again for every batch left queued without a job Redis knows: started
    while Redis was down (the page promised it would run once Redis is back), or whose job
    Redis lost (restarted without persistence). Run by the periodic job `requeue_imports`
    and by `flask crm requeue-imports`. Returns the ids queued; stops, keeping the rest for
    the next call, when Redis is (still) unreachable. Queuing a batch whose start is just
    being queued too is harmless: two runners of one batch never insert a row twice."""
    from redis.exceptions import RedisError
    from rq.job import Job

    from app.redis_conn import get_redis

    stranded = db.session.execute(select(ImportBatch.id, ImportBatch.job_id).where(
        ImportBatch.status == "queued").order_by(ImportBatch.id)).all()
    queued = []
    for batch_id, job_id in stranded:
        try:
            if job_id is not None and Job.exists(job_id, connection=get_redis()):
                continue
        except (RedisError, OSError):
            break
        job = enqueue("jobs.imports.run_import", batch_id, queue=queue, job_timeout=JOB_TIMEOUT)
        if job is None:
            break
        moved = db.session.execute(update(ImportBatch).where(
            ImportBatch.id == batch_id, ImportBatch.status == "queued",
            ImportBatch.job_id.is_not_distinct_from(job_id)).values(job_id=job.id)).rowcount
        if moved:  # else it was started (or resumed) meanwhile: that job runs it
            audit.record(None, "requeue", "import_batch", batch_id, {"job": (job_id, job.id)})
            queued.append(batch_id)
        db.session.commit()
    return queued


class _Run:
    """One pass over a batch's remaining rows."""

    def __init__(self, batch: ImportBatch):
        self.batch = batch
        self.actor_id = batch.created_by_id
        self.matcher = dedupe_bulk.BatchMatcher()
        self.index = {h: i for i, h in enumerate(batch.headers or [])}
        self.mapping = dict(batch.mapping or {})
        self.inserted_lines: dict[int, int] = {}   # customer id -> file line, this run
        self.reason = f"{IMPORT_REASON_PREFIX}{batch.id}：{batch.filename}"[:200]
        self.is_lead = batch.record_type == "lead"
        self.clean = clean_lead_row if self.is_lead else clean_row
        self.lead_keys: dict[tuple[str, str], int] = {}  # (rule, key) -> file line, leads
        self.lead_lines: dict[int, int] = {}  # lead id -> file line, this run
        self.owner_policy: Optional[dict] = None
        # Where this runner believes the batch stands; a chunk commits only from there.
        self.next_line = batch.next_line

    # row -> the form's input, or why it has none
    def row_input(self, cells: list) -> tuple[Optional[dict], Optional[str]]:
        data: dict[str, Any] = {}
        short = []
        for field, header in self.mapping.items():
            i = self.index[header]
            if i >= len(cells):
                short.append((i, header))
                continue
            data[field] = cells[i]
        short = [header for _, header in sorted(short)]
        if short:
            return None, tr("Missing columns: %(names)s (this line has %(cells)s columns, the "
                            "header %(headers)s)", names=tr(", ").join(short),
                            cells=len(cells), headers=len(self.index))
        if self.is_lead:
            source = data.get("source")
            if isinstance(source, str) and source.strip():
                data["source"] = LEAD_SOURCE_WORDS.get(source.strip(), source.strip())
            return data, None
        kind = (data.get("customer_type") or "").strip()
        if kind:
            data["customer_type"] = CUSTOMER_TYPE_WORDS.get(kind, kind.lower())
        if not data.get("source"):
            data["source"] = f"导入：{self.batch.filename}"[:100]
        return data, None

    def duplicate_reason(self, matches, file_hits) -> Optional[str]:
        from app.models.dedupe import DEDUPE_KINDS

        texts = []
        for group in dedupe_bulk.by_customer(matches):
            line = self.inserted_lines.get(group[0].customer_id)
            texts.append(tr("Same as line %(line)s of the file (%(kinds)s)", line=line,
                            kinds=dedupe_bulk.kinds_text(group)) if line
                         else dedupe_bulk.grouped_text(group))
        texts += [tr("Same as line %(line)s of the file (%(kinds)s)", line=line, kinds=(
                      tr("%(kind)s: %(why)s", kind=DEDUPE_KINDS[kind], why=account)
                      if account else str(DEDUPE_KINDS[kind])))
                  for kind, line, _, account in file_hits]
        return tr("; ").join(dict.fromkeys(texts)) or None  # keeps order, drops repeats


def clean_row(data: dict) -> tuple[Optional[dict], Optional[str]]:
    """The customer form's validation of one row: (values with their keys, None) or (None,
    the reason naming each bad field). Module-level: worker processes run it."""
    try:
        return clean_customer_data(data), None
    except ValidationFailed as exc:
        return None, "；".join(f"{FIELD_LABELS.get(f, f)}：{m}" for f, m in exc.fields.items())


def clean_lead_row(data: dict) -> tuple[Optional[dict], Optional[str]]:
    """The lead form's validation of one row (app.services.leads.clean_lead_data)."""
    from app.services.leads import clean_lead_data

    try:
        return clean_lead_data(data), None
    except ValidationFailed as exc:
        return None, "；".join(f"{LEAD_FIELD_LABELS.get(f, f)}：{m}"
                              for f, m in exc.fields.items())


class _Now:
    """A finished result, for the runs that clean in this process."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def _cleaned_chunks(job: _Run, records, size: int, pool):
    """(chunk, cleaned) pairs: each chunk's rows with their input read, cleaned by the
    worker pool while this process does the previous chunk's dedupe and inserts (about
    two thirds of an import's time is this validation: phonenumbers, e-mail, names)."""
    pending = None
    for chunk in _chunks(records, size):
        prepared = []
        for line, row in chunk:
            data, why = (None, row.reason) if isinstance(row, BadLine) else job.row_input(row)
            prepared.append((line, row, data, why))
        inputs = [data for _, _, data, _ in prepared if data is not None]
        result = pool.map_async(job.clean, inputs, chunksize=64) if pool is not None \
            else _Now([job.clean(d) for d in inputs])
        if pending is not None:
            yield pending[0], pending[1].get()
        pending = (prepared, result)
    if pending is not None:
        yield pending[0], pending[1].get()


def _worker_pool(total: Optional[int]):
    """Processes for the validation of a large file (none for a small one, or where fork
    is not available): forked, so they share this process's loaded code and config."""
    import multiprocessing
    import os

    workers = current_app.config.get("IMPORT_WORKERS") or os.cpu_count() or 1
    minimum = current_app.config.get("IMPORT_PARALLEL_MIN_ROWS", 5000)
    if workers < 2 or (total or 0) < minimum \
            or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork").Pool(workers)


def _records_from(job: _Run) -> Iterator[tuple[int, Any]]:
    batch = job.batch
    source = open_source(Path(batch.stored_path), batch.file_format, batch.encoding)
    for line, row in source.records:
        if line >= job.next_line:
            yield line, row


def _chunks(records, size: int):
    chunk = []
    for item in records:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(batch_id: int, progress: Optional[Callable[[int, Optional[int]], None]] = None,
        chunk_rows: Optional[int] = None) -> ImportBatch:
    """Import the batch's remaining rows, chunk by chunk (see the module docstring). Safe to
    call again after a crash, or by a second runner: what is committed is never redone."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(tr("The import batch does not exist"))
    if batch.status in ("mapping", "done"):
        return batch
    size = chunk_rows or current_app.config.get("IMPORT_CHUNK_ROWS", CHUNK_ROWS)
    batch.status, batch.started_at = "running", batch.started_at or utcnow()
    db.session.commit()
    job = _Run(batch)
    pool = _worker_pool(batch.total_rows)
    try:
        for chunk, cleaned in _cleaned_chunks(job, _records_from(job), size, pool):
            if not _import_chunk(job, chunk, cleaned):
                db.session.rollback()
                return db.session.get(ImportBatch, batch_id)  # another runner is ahead
            if progress:
                progress(batch.processed, batch.total_rows)
    except Exception as exc:
        db.session.rollback()
        batch = db.session.get(ImportBatch, batch_id)
        batch.status, batch.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        db.session.commit()
        raise
    finally:
        if pool is not None:
            pool.terminate()
    batch.status, batch.finished_at = "done", utcnow()
    audit.record(batch.created_by_id, "import", "import_batch", batch.id,
                 {"inserted": (None, batch.inserted), "duplicates": (None, batch.duplicates),
                  "invalid": (None, batch.invalid)})
    db.session.commit()
    return batch


def _import_chunk(job: _Run, chunk: list[tuple], cleaned: list[tuple]) -> bool:
    """One chunk: `chunk` holds (line, cells, form input or None, why not), `cleaned` the
    validation of each form input, in order."""
    batch = job.batch
    start_line, end_line = job.next_line, chunk[-1][0] + 1
    # The batch row's lock for this chunk: a second runner waits here, then finds next_line
    # moved and stops.
    claimed = db.session.execute(
        update(ImportBatch).where(ImportBatch.id == batch.id,
                                  ImportBatch.next_line == start_line)
        .values(status="running")).rowcount
    if claimed != 1:
        return False
    if job.is_lead:
        return _import_lead_chunk(job, chunk, cleaned, end_line)
    problems: list[dict] = []
    valid: list[tuple[int, dict, list]] = []
    results = iter(cleaned)
    for line, row, data, why in chunk:
        cells = None if isinstance(row, BadLine) else row
        values = None
        if data is not None:
            values, why = next(results)
        if why:
            problems.append(_problem(batch, line, "invalid", why, cells))
        else:
            valid.append((line, values, row))
    answers = dedupe_bulk.answers(job.matcher.table_hits([v for _, v, _ in valid]),
                                  job.matcher.rules, job.matcher.accounts)
    accepted: list[tuple[int, dict]] = []
    for (line, values, row), matches in zip(valid, answers):
        file_hits = [] if matches else job.matcher.file_hits(values)
        why = job.duplicate_reason(matches, file_hits)
        # Refused or not, the row's keys count for the rows after it: a row linked to an
        # inserted one only through a refused one is the same company.
        job.matcher.remember(values, line)
        if why:
            problems.append(_problem(batch, line, "duplicate", why, row))
        else:
            accepted.append((line, values))
    ids = _insert(job, accepted)
    job.inserted_lines.update(zip(ids, (line for line, _ in accepted)))
    if problems:
        db.session.execute(insert(ImportProblem), problems)
    invalid = sum(1 for p in problems if p["kind"] == "invalid")
    db.session.execute(update(ImportBatch).where(ImportBatch.id == batch.id).values(
        next_line=end_line, inserted=ImportBatch.inserted + len(ids),
        invalid=ImportBatch.invalid + invalid,
        duplicates=ImportBatch.duplicates + len(problems) - invalid))
    db.session.commit()
    db.session.refresh(batch)
    job.next_line = end_line
    return True


LEAD_KEYS = (("mobile", "mobile_e164"), ("phone", "phone_e164"), ("email", "email_norm"),
             ("company_name", "name_core"))


def _import_lead_chunk(job: _Run, chunk: list[tuple], cleaned: list[tuple],
                       end_line: int) -> bool:
    """Import as leads, one chunk (after the batch row's claim): each valid row is checked
    against leads and customers (app.services.leads.find_duplicates: any match, blocking or
    warning, keeps it out, as for customers) and against the file's earlier rows, then made
    a lead through app.services.leads.insert_lead in the batch's lead pool, owned by
    lead_owner_id within the owner's lead cap (counted under the owner's row lock), or placed
    by the lead rules (target 'rules')."""
    from app.services import leads as lead_service
    from app.services import policies
    from app.services.errors import CapExceeded

    from app.models.dedupe import DEDUPE_KINDS
    from app.services import dedupe

    batch = job.batch
    rules = dedupe.active_rules()
    owner = batch.lead_owner_id
    by_rules = batch.target == "rules"
    problems: list[dict] = []
    accepted: list[tuple[int, dict]] = []
    inserted = 0
    results = iter(cleaned)
    if owner is not None:
        row = ownership.lock_active_rep(owner)
        job.owner_policy = policies.effective_policy(owner,
                                                     policies.chain_from_path(row.department_path))
    for line, row, data, why in chunk:
        cells = None if isinstance(row, BadLine) else row
        values = None
        if data is not None:
            values, why = next(results)
        if why:
            problems.append(_problem(batch, line, "invalid", why, cells))
            continue
        matches = lead_service.find_duplicates(values)
        # A lead this run made from an earlier line is named by that line.
        texts = [tr("Same as line %(line)s of the file (%(kinds)s)",
                    line=job.lead_lines[m.id], kinds=m.kind_label)
                 if m.record == "lead" and m.id in job.lead_lines else m.text
                 for m in matches[:3]]
        keys = [(rule, values.get(key)) for rule, key in LEAD_KEYS
                if values.get(key) and lead_service.rule_of(rule) in rules]
        if not texts:  # the file's earlier rows, refused ones too
            texts = [tr("Same as line %(line)s of the file (%(kinds)s)",
                        line=job.lead_keys[k], kinds=str(DEDUPE_KINDS.get(k[0], k[0])))
                     for k in keys if k in job.lead_keys][:1]
        for k in keys:
            job.lead_keys.setdefault(k, line)
        if texts:
            problems.append(_problem(batch, line, "duplicate", tr("; ").join(texts), row))
            continue
        if by_rules:  # placed together below, the chunk's leads counted against the caps
            accepted.append((line, values))
            continue
        if owner is not None:
            try:
                lead_service.check_lead_cap(owner, 1, job.owner_policy)
            except CapExceeded as exc:
                problems.append(_problem(batch, line, "invalid", exc.message, row))
                continue
        lead = lead_service.insert_lead(values, actor_id=job.actor_id, owner_id=owner,
                                        pool_id=batch.pool_id if owner is None else None,
                                        reason=job.reason)
        job.lead_lines[lead.id] = line
        inserted += 1
    if accepted:
        # The lead rules (app.services.leads.place_by_rules, the reps locked and re-counted);
        # what no rule matches goes to the batch's lead pool, else the default lead pool.
        placements = lead_service.place_by_rules([v for _, v in accepted])
        default_id = lead_service.default_lead_pool().id
        for (line, values), p in zip(accepted, placements):
            pool_id = p.pool_id
            if p.rule is None and batch.pool_id is not None:
                pool_id = batch.pool_id
            elif p.rule is None:
                pool_id = default_id
            lead = lead_service.insert_lead(values, actor_id=job.actor_id, owner_id=p.owner_id,
                                            pool_id=pool_id if p.owner_id is None else None,
                                            reason=job.reason, rule=p.rule, how=p.how)
            job.lead_lines[lead.id] = line
            inserted += 1
    if problems:
        db.session.execute(insert(ImportProblem), problems)
    invalid = sum(1 for p in problems if p["kind"] == "invalid")
    db.session.execute(update(ImportBatch).where(ImportBatch.id == batch.id).values(
        next_line=end_line, inserted=ImportBatch.inserted + inserted,
        invalid=ImportBatch.invalid + invalid,
        duplicates=ImportBatch.duplicates + len(problems) - invalid))
    db.session.commit()
    db.session.refresh(batch)
    job.next_line = end_line
    return True


def _problem(batch, line, kind, reason, row) -> dict:
    values = dict(zip(batch.headers or [], row)) if row is not None else None
    return {"batch_id": batch.id, "line": line, "kind": kind, "reason": reason,
            "values": values}


_ALL_COLUMNS = [c.name for c in Customer.__table__.columns if c.name != "id"]


def _insert(job: _Run, accepted: list[tuple[int, dict]]) -> list[int]:
    """Insert the chunk's new customers with their ownership rows and 'created' events."""
    if not accepted:
        return []
    now = utcnow()
    placements = _placements(job, [v for _, v in accepted])
    rows = []
    for _, values in accepted:
        row = {c: None for c in _ALL_COLUMNS}
        row.update(birthday_lunar=False, norm_version=0)
        row.update(values)
        row.update(created_by_id=job.actor_id, created_at=now, updated_at=now)
        rows.append(row)
    ids = _new_customer_ids(len(rows))
    for cid, row in zip(ids, rows):
        row["id"] = cid
    bulk.insert_rows(Customer.__table__, rows)
    search.reindex(ids)  # written by COPY: no ORM flush sees them
    match_keys.reindex(ids)
    owned = [{"customer_id": cid, "owner_id": p[0], "pool_id": p[1], "acquired_at": now,
              "acquired_how": "imported" if p[0] is None else "rule-assigned",
              "first_owner_id": p[0], "locked": False, "won": False, "category": "potential"}
             for cid, p in zip(ids, placements)]
    bulk.insert_rows(Ownership.__table__, owned)
    ownership.record_events([
        {"customer_id": cid, "kind": "created", "actor_id": job.actor_id, "to_owner_id": p[0],
         "to_pool_id": p[1], "reason": job.reason, "rule": p[2]}
        for cid, p in zip(ids, placements)], now)
    return ids


def _new_customer_ids(n: int) -> list[int]:
    """Ids for n new customers, taken before the insert so that the rows can be streamed
    (COPY) instead of inserted one RETURNING at a time."""
    conn = db.session.connection()
    if conn.dialect.name == "postgresql":
        return list(conn.execute(text(
            "SELECT nextval(pg_get_serial_sequence('customer', 'id')) "
            "FROM generate_series(1, :n)"), {"n": n}).scalars())
    # SQLite: the chunk's first statement (the batch row's UPDATE) took the database's write
    # lock, so nobody else inserts a customer before this transaction ends.
    top = conn.execute(select(func.max(Customer.id))).scalar() or 0
    return list(range(top + 1, top + n + 1))


def _placements(job: _Run, values: list[dict]) -> list[tuple[Optional[int], Optional[int],
                                                             Optional[str]]]:
    """(owner, pool, rule) per new customer: the chosen pool, or the assignment rules with
    caps honoured (a rep at the cap is skipped; no room anywhere -> the rule's pool)."""
    batch = job.batch
    if batch.target == "pool":
        return [(None, batch.pool_id, None)] * len(values)
    from app.services import rules

    fallback = batch.pool_id or ownership.default_pool().id
    placed = rules.place_many([dict(v, lifecycle="potential") for v in values])
    out = []
    per_owner: dict[int, int] = {}
    for p in placed:
        if p is None:
            out.append((None, fallback, None))
            continue
        if p.owner_id is not None:
            per_owner[p.owner_id] = per_owner.get(p.owner_id, 0) + 1
        out.append((p.owner_id, p.pool_id, f"rule:{p.rule}"))
    # Lock each receiving rep and re-count under the lock: a claim that landed since the
    # rules counted cannot push the rep over the cap.
    for owner_id in sorted(per_owner):
        ownership.lock_rep(owner_id)
        room = caps.room(owner_id).left
        if room < per_owner[owner_id]:
            over = per_owner[owner_id] - room
            for i in range(len(out) - 1, -1, -1):
                if over and out[i][0] == owner_id:
                    out[i] = (None, fallback, out[i][2])
                    over -= 1
    return out
