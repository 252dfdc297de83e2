"""Importing customers, first steps: upload a file (its header row read, its columns'
meaning guessed), then check and store the column mapping and where the customers go.
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Optional

from flask import current_app, has_app_context

from app.extensions import db
from app.models import ImportBatch, Pool, User
from app.security import marketing_only, service_only
from app.services import audit
from app.services.errors import ValidationFailed, tr
from app.services.import_files import BadLine, UnreadableFile, detect_format, open_source
from app.services.imports import get_batch, importable_pool_ids, may_use_rules, require_importer
from app.services.ownership import SERVICE_OWNS_NOTHING

MAX_FILE_BYTES = 50 * 1024 * 1024

# The customer fields a column can fill, in the order of the mapping form.
FIELD_LABELS = {
    "name": "客户名称", "customer_type": "客户类型", "industry": "行业", "province": "省份",
    "city": "城市", "address": "地址", "mobile": "手机", "phone": "固定电话", "email": "邮箱",
    "source": "来源", "product_line": "产品线", "birthday": "生日", "birthday_lunar": "农历生日",
    "notes": "备注",
}
REQUIRED_FIELDS = ("name",)
# Header texts seen in real exports (Excel templates, other CRMs), compared after lower-casing
# and removing spaces: the mapping form starts from these guesses.
HEADER_SYNONYMS = {
    "name": ("客户名称", "名称", "公司名称", "企业名称", "单位名称", "客户", "公司", "姓名",
             "name", "company", "customer", "customername", "companyname"),
    "customer_type": ("客户类型", "类型", "type", "customertype"),
    "industry": ("行业", "所属行业", "industry"),
    "province": ("省份", "省", "所在省份", "province"),
    "city": ("城市", "市", "所在城市", "city"),
    "address": ("地址", "详细地址", "公司地址", "联系地址", "address"),
    "mobile": ("手机", "手机号", "手机号码", "移动电话", "mobile", "cell", "cellphone"),
    "phone": ("电话", "固定电话", "座机", "办公电话", "联系电话", "phone", "tel", "telephone"),
    "email": ("邮箱", "电子邮箱", "电子邮件", "邮件", "email", "e-mail", "mail"),
    "source": ("来源", "客户来源", "source"),
    "product_line": ("产品线", "意向产品", "productline", "product"),
    "birthday": ("生日", "出生日期", "birthday", "birthdate"),
    "birthday_lunar": ("农历生日", "农历", "lunar"),
    "notes": ("备注", "说明", "notes", "note", "remark", "remarks"),
}
# "Import as leads": the lead fields a column can fill (app.services.leads.LEAD_FIELDS), and
# at least one of the two names.
LEAD_FIELD_LABELS = {
    "company_name": "公司名称", "person_name": "联系人", "mobile": "手机", "phone": "固定电话",
    "email": "邮箱", "province": "省份", "city": "城市", "industry": "行业",
    "source": "来源渠道", "campaign": "市场活动", "notes": "备注",
}
LEAD_NAME_FIELDS = ("company_name", "person_name")
LEAD_HEADER_SYNONYMS = {
    "company_name": ("公司名称", "公司", "企业名称", "单位名称", "客户名称", "company",
                     "companyname"),
    "person_name": ("联系人", "姓名", "联系人姓名", "name", "contact", "contactname"),
    **{f: HEADER_SYNONYMS[f] for f in ("mobile", "phone", "email", "province", "city",
                                       "industry", "notes")},
    "source": ("来源渠道", "来源", "渠道", "线索来源", "source", "channel"),
    "campaign": ("市场活动", "活动", "campaign"),
}
# The source channels as a file writes them (the names) -> the stored codes.
LEAD_SOURCE_WORDS = {"官网表单": "web_form", "官网": "web_form", "电话": "phone",
                     "展会": "exhibition", "转介绍": "referral", "广告": "advertising",
                     "市场活动": "campaign", "其他": "other"}
CUSTOMER_TYPE_WORDS = {"企业": "company", "企业客户": "company", "公司": "company",
                       "单位": "company", "个人": "person", "个人客户": "person",
                       # the type as an English export writes it (app.services.exports)
                       "Company customer": "company", "Individual customer": "person"}



def import_dir() -> Path:
    from config import INSTANCE_DIR

    base = current_app.config.get("IMPORT_DIR") if has_app_context() else None
    path = Path(base) if base else INSTANCE_DIR / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _norm_header(text: str) -> str:
    return "".join(str(text).split()).lower().replace("（", "(").replace("）", ")")


def field_labels(record_type: str) -> dict[str, str]:
    """The fields a column can fill for this kind of import."""
    return LEAD_FIELD_LABELS if record_type == "lead" else FIELD_LABELS


def guess_mapping(headers: list[str], record_type: str = "customer") -> dict[str, str]:
    """{field: header} for the headers that name a customer (or lead) field, each header used
    once."""
    by_norm = {_norm_header(h): h for h in headers}
    mapping, used = {}, set()
    synonyms = LEAD_HEADER_SYNONYMS if record_type == "lead" else HEADER_SYNONYMS
    for field, words in synonyms.items():
        for word in words:
            header = by_norm.get(_norm_header(word))
            if header is not None and header not in used:
                mapping[field] = header
                used.add(header)
                break
    return mapping


def upload(actor: User, filename: str, data: bytes,
           record_type: str = "customer") -> ImportBatch:
    """Store the file and read its header row; the batch then waits for its column mapping.
    `record_type` 'lead' imports the rows as leads."""
    require_importer(actor)
    if record_type not in ("customer", "lead"):
        raise ValidationFailed({"record_type": tr("The record type can only be: %(choices)s",
                                                  choices="customer, lead")})
    filename = Path(filename or "").name or "import.csv"
    if not data:
        raise ValidationFailed({"file": tr("Select the file to import (the file is empty)")})
    if len(data) > MAX_FILE_BYTES:
        raise ValidationFailed({"file": tr("The file is too large: at most %(mb)s MB",
                                         mb=MAX_FILE_BYTES // 1024 // 1024)})
    try:
        file_format = detect_format(filename, data[:8192])
    except UnreadableFile as exc:
        raise ValidationFailed({"file": str(exc)})
    path = import_dir() / f"{uuid.uuid4().hex}.{file_format}"
    path.write_bytes(data)
    try:
        source = open_source(path, file_format)
    except UnreadableFile as exc:
        path.unlink(missing_ok=True)
        raise ValidationFailed({"file": str(exc)})
    batch = ImportBatch(created_by_id=actor.id, filename=filename[:255], stored_path=str(path),
                        sha256=hashlib.sha256(data).hexdigest(), file_format=file_format,
                        encoding=source.encoding, headers=source.headers,
                        mapping=guess_mapping(source.headers, record_type), target="pool",
                        record_type=record_type,
                        status="mapping", next_line=source.header_line + 1)
    db.session.add(batch)
    db.session.flush()
    audit.record(actor.id, "upload", "import_batch", batch.id,
                 {"filename": (None, batch.filename), "sha256": (None, batch.sha256)})
    db.session.commit()
    return batch


def preview(batch: ImportBatch, rows: int = 5) -> list[tuple[int, list]]:
    """The first data rows as read, for the mapping page."""
    source = open_source(Path(batch.stored_path), batch.file_format, batch.encoding)
    out = []
    for line, row in source.records:
        out.append((line, [row.reason] if isinstance(row, BadLine) else row))
        if len(out) >= rows:
            break
    return out


def configure(actor: User, batch_id: int, mapping: dict[str, str], target: str,
              pool_id: Optional[int], owner_id: Optional[int] = None) -> ImportBatch:
    """Check and store the column mapping and where the customers go; the batch is queued.
    A lead batch takes target 'pool' (a lead pool) or 'owner' (owner_id)."""
    require_importer(actor)
    batch = get_batch(actor, batch_id)
    if batch.status != "mapping":
        raise ValidationFailed({"batch": tr("This batch has started importing; its column mapping "
                                          "can no longer change")})
    if batch.record_type == "lead":
        return _configure_leads(actor, batch, mapping, target, pool_id, owner_id)
    errors: dict[str, str] = {}
    mapping = {f: h for f, h in (mapping or {}).items() if h}
    unknown = [f for f in mapping if f not in FIELD_LABELS]
    if unknown:
        errors["mapping"] = tr("Unknown fields: %(names)s", names=", ".join(unknown))
    missing_headers = [h for h in mapping.values() if h not in (batch.headers or [])]
    if missing_headers:
        errors["mapping"] = tr("The file has no such columns: %(names)s",
                                 names=", ".join(missing_headers))
    repeated = {h for h in mapping.values() if list(mapping.values()).count(h) > 1}
    if repeated:
        errors["mapping"] = tr("One column cannot map to several fields: %(names)s",
                                names=", ".join(sorted(repeated)))
    for field in REQUIRED_FIELDS:
        if field not in mapping:
            errors[field] = tr("Say which column is 『%(label)s』 (the file's columns: "
                               "%(headers)s)", label=FIELD_LABELS[field],
                               headers=tr(", ").join(batch.headers or []))
    pools = importable_pool_ids(actor)
    if target == "rules":
        if not may_use_rules(actor):
            errors["target"] = tr("Only back-office staff and admins can import by assignment "
                                   "rules")
    elif target == "pool":
        if pool_id is None:
            errors["pool"] = tr("Select the pool to import into")
        elif getattr(db.session.get(Pool, pool_id), "record_type", None) != "customer":
            errors["pool"] = tr("The pool does not exist")
        elif pools is not None and pool_id not in pools:
            errors["pool"] = tr("You can only import into pools you manage")
    else:
        errors["target"] = tr("The import target can only be 『into a pool』 or 『by assignment "
                              "rules』")
    if target == "rules" and pool_id is not None and getattr(db.session.get(Pool, pool_id), "record_type", None) != "customer":
        errors["pool"] = tr("The pool does not exist")
    if errors:
        db.session.rollback()
        raise ValidationFailed(errors)
    batch.mapping, batch.target, batch.pool_id = mapping, target, pool_id
    batch.total_rows = sum(1 for _ in open_source(Path(batch.stored_path), batch.file_format,
                                                  batch.encoding).records)
    batch.status = "queued"
    audit.record(actor.id, "configure", "import_batch", batch.id,
                 {"mapping": (None, ", ".join(f"{f}={h}" for f, h in mapping.items())),
                  "target": (None, target), "pool_id": (None, pool_id)})
    db.session.commit()
    return batch


def _check_columns(batch: ImportBatch, mapping: dict[str, str], labels: dict[str, str],
                   errors: dict[str, str]) -> None:
    unknown = [f for f in mapping if f not in labels]
    if unknown:
        errors["mapping"] = tr("Unknown fields: %(names)s", names=", ".join(unknown))
    missing_headers = [h for h in mapping.values() if h not in (batch.headers or [])]
    if missing_headers:
        errors["mapping"] = tr("The file has no such columns: %(names)s",
                               names=", ".join(missing_headers))
    repeated = {h for h in mapping.values() if list(mapping.values()).count(h) > 1}
    if repeated:
        errors["mapping"] = tr("One column cannot map to several fields: %(names)s",
                               names=", ".join(sorted(repeated)))


def _configure_leads(actor: User, batch: ImportBatch, mapping: dict[str, str], target: str,
                     pool_id: Optional[int], owner_id: Optional[int]) -> ImportBatch:
    """Import as leads: the lead fields, a name column, and a lead pool the actor may import
    into or (staff, admins) an active owner."""
    from app.models.org import EMPLOYMENT_ACTIVE
    from app.services.imports import (importable_lead_pool_ids, may_name_lead_owner,
                                      may_use_rules)

    errors: dict[str, str] = {}
    mapping = {f: h for f, h in (mapping or {}).items() if h}
    _check_columns(batch, mapping, LEAD_FIELD_LABELS, errors)
    if not any(f in mapping for f in LEAD_NAME_FIELDS):
        errors["company_name"] = tr(
            "Say which column is 『%(label)s』 (the file's columns: %(headers)s)",
            label=f"{LEAD_FIELD_LABELS['company_name']} / {LEAD_FIELD_LABELS['person_name']}",
            headers=tr(", ").join(batch.headers or []))
    owner = None
    if target == "pool":
        pools = importable_lead_pool_ids(actor)
        if pool_id is None:
            errors["pool"] = tr("Select the pool to import into")
        elif getattr(db.session.get(Pool, pool_id), "record_type", None) != "lead":
            errors["pool"] = tr("The lead pool does not exist")
        elif pools is not None and pool_id not in pools:
            errors["pool"] = tr("You can only import into pools you manage")
    elif target == "rules":
        if not may_use_rules(actor):
            errors["target"] = tr("Only back-office staff and admins can import by assignment "
                                  "rules")
        elif pool_id is not None and getattr(db.session.get(Pool, pool_id), "record_type",
                                             None) != "lead":
            errors["pool"] = tr("The lead pool does not exist")
    elif target == "owner":
        if not may_name_lead_owner(actor):
            errors["target"] = tr("Only back-office staff and admins can import leads to an "
                                  "owner")
        else:
            owner = db.session.get(User, owner_id) if owner_id else None
            if owner is None or not owner.active \
                    or owner.employment_status != EMPLOYMENT_ACTIVE:
                errors["owner"] = tr("Select an active owner for the leads")
            elif marketing_only(owner):
                # Refused here already (the run's lock refuses it too, in ownership): the
                # same words as every other path that would make marketing an owner.
                errors["owner"] = tr("%(name)s works in marketing and cannot own customers "
                                     "or leads", name=owner.display_name)
            elif service_only(owner):
                errors["owner"] = tr(SERVICE_OWNS_NOTHING, name=owner.display_name)
        pool_id = None
    else:
        errors["target"] = tr("Leads are imported into a lead pool, to an owner or by the "
                              "assignment rules")
    if errors:
        db.session.rollback()
        raise ValidationFailed(errors)
    batch.mapping, batch.pool_id = mapping, pool_id
    batch.target = "rules" if target == "rules" else "pool"
    batch.lead_owner_id = owner.id if owner is not None else None
    batch.total_rows = sum(1 for _ in open_source(Path(batch.stored_path), batch.file_format,
                                                  batch.encoding).records)
    batch.status = "queued"
    audit.record(actor.id, "configure", "import_batch", batch.id,
                 {"mapping": (None, ", ".join(f"{f}={h}" for f, h in mapping.items())),
                  "record_type": (None, "lead"), "target": (None, batch.target),
                  "pool_id": (None, pool_id),
                  "lead_owner_id": (None, batch.lead_owner_id)})
    db.session.commit()
    return batch
