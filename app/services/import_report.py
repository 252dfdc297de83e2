"""An import's error report: the rows it kept out (invalid or duplicate) and why, as a CSV
to fix in Excel and import again."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from sqlalchemy import select

from app.extensions import db
from app.models import ImportProblem, User
from app.services.exports import SafeCsvWriter
from app.services.imports import get_batch

REPORT_KINDS = {"invalid": "数据错误", "duplicate": "重复"}


def problem_rows(actor: User, batch_id: int, limit: Optional[int] = None) -> list[ImportProblem]:
    batch = get_batch(actor, batch_id)
    q = select(ImportProblem).where(ImportProblem.batch_id == batch.id).order_by(
        ImportProblem.line)
    if limit:
        q = q.limit(limit)
    return list(db.session.execute(q).scalars())


def problem_report(actor: User, batch_id: int) -> tuple[str, str]:
    """(file name, CSV text with a BOM): line, kind, reason, then the row's own columns —
    fix the rows in Excel and import the report again."""
    batch = get_batch(actor, batch_id)
    out = io.StringIO()
    out.write("\ufeff")
    writer = SafeCsvWriter(out)  # the file's own headers and cells are anyone's text
    headers = list(batch.headers or [])
    writer.writerow(["行号", "问题类型", "原因", *headers])
    for p in db.session.execute(select(ImportProblem).where(
            ImportProblem.batch_id == batch.id).order_by(ImportProblem.line)).scalars():
        values = p.values or {}
        writer.writerow([p.line, REPORT_KINDS.get(p.kind, p.kind), p.reason,
                         *[values.get(h, "") for h in headers]])
    stem = Path(batch.filename).stem
    return f"{stem}-errors.csv", out.getvalue()
