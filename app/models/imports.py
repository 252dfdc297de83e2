"""Bulk imports (批量导入): one row per uploaded file, and the rows it could not take."""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (JSON, CheckConstraint, Column, DateTime, ForeignKey, Integer, String,
                        Text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow

IMPORT_STATUSES = {"mapping": _l("Columns to map"), "queued": _l("Queued"),
                   "running": _l("Importing"), "done": _l("Done"), "failed": _l("Failed")}


class ImportBatch(Model):
    """An uploaded CSV/XLSX file and how far its import got.

    `next_line` is the resume point: every chunk commits its customers, its problem rows and
    the new `next_line` in one transaction, so a worker killed mid-import resumes where the
    last committed chunk ended, with nothing lost and nothing inserted twice.
    """

    __tablename__ = "import_batch"
    __table_args__ = (
        CheckConstraint("status in ('mapping', 'queued', 'running', 'done', 'failed')",
                        name="ck_import_batch_status"),
        CheckConstraint("target in ('pool', 'rules')", name="ck_import_batch_target"),
        CheckConstraint("record_type in ('customer', 'lead')",
                        name="ck_import_batch_record_type"),
    )
    id = Column(Integer, primary_key=True)
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    filename = Column(String(255), nullable=False)
    stored_path = Column(String(500), nullable=False)
    sha256 = Column(String(64), nullable=False, index=True)
    file_format = Column(String(8), nullable=False)  # csv / xlsx
    encoding = Column(String(20))  # utf-8-sig / utf-8 / gb18030 (CSV only)
    headers = Column(JSON)  # the file's header row, as read
    mapping = Column(JSON)  # {customer field: file column header}
    target = Column(String(10), nullable=False, default="pool")
    pool_id = Column(Integer, ForeignKey("pool.id", ondelete="SET NULL"))
    # "Import as leads": the rows become leads (app.services.leads) in the lead pool pool_id,
    # or owned by lead_owner_id (target stays 'pool'; rules place customers only).
    record_type = Column(String(10), nullable=False, default="customer",
                         server_default="customer")
    lead_owner_id = Column(Integer)  # no foreign key: added in place on SQLite (see 0030)
    status = Column(String(10), nullable=False, default="mapping", index=True)
    total_rows = Column(Integer)
    next_line = Column(Integer, nullable=False, default=2)  # file line of the next data row
    inserted = Column(Integer, nullable=False, default=0)
    duplicates = Column(Integer, nullable=False, default=0)
    invalid = Column(Integer, nullable=False, default=0)
    job_id = Column(String(64))
    error = Column(Text)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    started_at = Column(DateTime)
    finished_at = Column(DateTime)

    created_by = relationship("Employee", foreign_keys=[created_by_id])
    lead_owner = relationship("Employee", viewonly=True,
                              primaryjoin="foreign(ImportBatch.lead_owner_id) == Employee.id")
    pool = relationship("Pool")

    @property
    def status_label(self) -> str:
        return str(IMPORT_STATUSES.get(self.status, self.status))

    @property
    def processed(self) -> int:
        return self.inserted + self.duplicates + self.invalid

    def __repr__(self) -> str:
        return self.filename


class ImportProblem(Model):
    """A row the import did not insert: its file line, why, and the values as read (the
    downloadable error report)."""

    __tablename__ = "import_problem"
    __table_args__ = (
        CheckConstraint("kind in ('invalid', 'duplicate')", name="ck_import_problem_kind"),
    )
    id = Column(Integer, primary_key=True)
    batch_id = Column(Integer, ForeignKey("import_batch.id", ondelete="CASCADE"),
                      nullable=False, index=True)
    line = Column(Integer, nullable=False)
    kind = Column(String(10), nullable=False)
    reason = Column(Text, nullable=False)
    values = Column(JSON)
