"""Tags (标签): the list admins and marketing keep, and tags on customers, contacts and leads.

Who tags what (the issue: "owners tag their records"; marketing keeps the list):
- admins, managers, reps and back-office staff tag the records in their edit scope (a
  customer they own or manage, a contact of one, a lead they may change); a read-only share
  gives no tagging;
- marketing (市场专员) tags any customer, contact or lead it reads (everything): a tag is
  segmentation metadata, not the record's data, and segments are built on tags. The record
  itself stays read-only for marketing;
- auditors tag nothing.
A tag is once per record (unique indexes; concurrent taggers meet ON CONFLICT DO NOTHING).
Every added or removed tag is audited on the record; tag list changes on the tag.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import Contact, Customer, Lead, User
from app.models.marketing import RecordTag, Tag
from app.security import (ROLE_ADMIN, ROLE_MANAGER, ROLE_MARKETING, ROLE_REP, ROLE_STAFF,
                          customer_scope_clause, has_role)
from app.services import audit
from app.services.saving import commit_unique
from app.services.errors import (N_, UNKNOWN_FIELD, NotFound, OutOfScope, PermissionDenied,
                                 ValidationFailed, tr)
from app.services.text import UNCLEAN_MESSAGE, is_unclean

RECORD_TYPES = ("customer", "contact", "lead")
COLUMN = {"customer": RecordTag.customer_id, "contact": RecordTag.contact_id,
          "lead": RecordTag.lead_id}
MAX_BATCH = 1000
TAG_FIELDS = {"name": 50, "color": 16, "description": 200}
_COLOR = re.compile(r"^(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3}|[a-zA-Z]{3,16})$")
NO_SUCH_RECORDS = N_("Some of these records do not exist or are outside your data scope")
NO_SUCH_TAG = N_("The tag does not exist")


# --- the tag list ---------------------------------------------------------------------------
def may_edit_list(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING)


def may_tag(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_MARKETING)


def _require_list_editor(actor: Optional[User]) -> None:
    if not may_edit_list(actor):
        raise PermissionDenied(tr("Only admins and marketing keep the tag list"))


def all_tags() -> list[Tag]:
    return list(db.session.execute(select(Tag).order_by(Tag.name)).scalars())


def get_tag(tag_id: Any, field: str = "tag_id") -> Tag:
    from app.services.ids import parse_pk

    pk = parse_pk(tag_id) if not isinstance(tag_id, bool) else None
    tag = db.session.get(Tag, pk) if pk is not None else None
    if tag is None:
        raise ValidationFailed({field: tr(NO_SUCH_TAG)})
    return tag


def clean_tag(data: Any, *, partial: bool = False) -> dict:
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("Must be an object")})
    errors = {str(k)[:100]: str(UNKNOWN_FIELD) for k in data if k not in TAG_FIELDS}
    out: dict[str, Any] = {}
    for name, limit in TAG_FIELDS.items():
        if partial and name not in data:
            continue
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            errors[name] = tr("Must be text")
            continue
        if is_unclean(value):
            errors[name] = str(UNCLEAN_MESSAGE)
            continue
        value = (value or "").strip() or None
        if value is not None and len(value) > limit:
            errors[name] = tr("Cannot exceed %(limit)s characters", limit=limit)
            continue
        out[name] = value
    if "name" in out and out["name"] is None and "name" not in errors:
        errors["name"] = tr("A tag needs a name")
    if out.get("color") and not _COLOR.match(out["color"]):
        errors["color"] = tr("A colour is a name (red) or #rrggbb")
    if errors:
        raise ValidationFailed(errors)
    return out


def _name_taken(name: str, but: Optional[int] = None) -> bool:
    q = select(Tag.id).where(func.lower(Tag.name) == name.lower())
    if but is not None:
        q = q.where(Tag.id != but)
    return db.session.execute(q).first() is not None


def _save(fn):
    # The unique index on the name: another editor may save the same name meanwhile.
    return commit_unique(fn, "name", tr("A tag with this name already exists"))


def create_tag(actor: User, data: Any) -> Tag:
    _require_list_editor(actor)
    values = clean_tag(data)
    if _name_taken(values["name"]):
        raise ValidationFailed({"name": tr("A tag with this name already exists")})

    def go():
        tag = Tag(created_by_id=actor.id, **values)
        audit.record_new(actor.id, "tag", tag)
        return tag

    return _save(go)


def update_tag(actor: User, tag_id: Any, data: Any) -> Tag:
    _require_list_editor(actor)
    tag = get_tag(tag_id)
    values = clean_tag(data, partial=True)
    if values.get("name") and _name_taken(values["name"], but=tag.id):
        raise ValidationFailed({"name": tr("A tag with this name already exists")})

    def go():
        changes = audit.diff(tag, values)
        for key, value in values.items():
            setattr(tag, key, value)
        if changes:
            audit.record(actor.id, "update", "tag", tag.id, changes)
        db.session.flush()
        return tag

    return _save(go)


def delete_tag(actor: User, tag_id: Any) -> int:
    """Delete a tag and its links (ON DELETE CASCADE); returns how many records lose it.
    Segments naming it match nobody through it (app.services.marketing_segments)."""
    _require_list_editor(actor)
    tag = get_tag(tag_id)
    used = db.session.execute(select(func.count()).select_from(RecordTag).where(
        RecordTag.tag_id == tag.id)).scalar_one()

    def go():
        audit.record(actor.id, "delete", "tag", tag.id, {"name": (tag.name, None),
                                                         "records": (used, None)})
        db.session.execute(delete(RecordTag).where(RecordTag.tag_id == tag.id))
        db.session.delete(tag)
        return used

    return _save(go)


# --- tags on records ----------------------------------------------------------------------
def parse_record_ids(values: Any, field: str = "ids") -> list[int]:
    from app.services.ids import parse_pk

    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise ValidationFailed({field: tr("The record ids must be a list of positive integers")})
    out: dict[int, None] = {}
    for raw in values:
        pk = parse_pk(raw) if not isinstance(raw, bool) else None
        if pk is None:
            raise ValidationFailed({field: tr("The record ids must be a list of positive "
                                              "integers")})
        out[pk] = None
        if len(out) > MAX_BATCH:
            raise ValidationFailed({field: tr("At most %(limit)s records at a time",
                                              limit=MAX_BATCH)})
    if not out:
        raise ValidationFailed({field: tr("Select at least one record")})
    return list(out)


def _record_type(value: Any) -> str:
    if value not in RECORD_TYPES:
        raise ValidationFailed({"record_type": tr("The record type can only be customer, "
                                                  "contact or lead")})
    return value


def taggable_ids(actor: User, record_type: str, ids: list[int]) -> set[int]:
    """Those of `ids` the actor may tag (see the module's doc), in one statement."""
    from app.services.leads import lead_scope_clause

    if not may_tag(actor):
        return set()
    marketing_only = has_role(actor, ROLE_MARKETING) and not has_role(
        actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF)
    if record_type == "customer":
        q = select(Customer.id).where(
            Customer.id.in_(ids), customer_scope_clause(actor, Customer.id,
                                                        include_shared=marketing_only))
    elif record_type == "contact":
        q = select(Contact.id).where(
            Contact.id.in_(ids), customer_scope_clause(actor, Contact.customer_id,
                                                       include_shared=marketing_only))
    else:
        q = select(Lead.id).where(Lead.id.in_(ids),
                                  lead_scope_clause(actor, Lead.id, write=not marketing_only))
    return set(db.session.execute(q).scalars())


def _checked(actor: User, record_type: Any, ids: Any, tag_id: Any) -> tuple[str, list, Tag]:
    if not may_tag(actor):
        raise PermissionDenied(tr("Your role cannot tag records"))
    record_type = _record_type(record_type)
    ids = parse_record_ids(ids)
    tag = get_tag(tag_id)
    allowed = taggable_ids(actor, record_type, ids)
    foreign = [i for i in ids if i not in allowed]
    if foreign:
        raise OutOfScope(tr(NO_SUCH_RECORDS), ids=foreign)
    return record_type, ids, tag


def _insert():
    """INSERT that skips a row another tagger inserted first (the unique indexes)."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(RecordTag)


def tag_records(actor: User, record_type: Any, ids: Any, tag_id: Any) -> int:
    """Put the tag on every record (scope re-checked for each: one outside refuses all);
    records that already carry it are skipped. Returns how many got it now. Commits."""
    from app.models.customer import utcnow

    record_type, ids, tag = _checked(actor, record_type, ids, tag_id)
    column = COLUMN[record_type]
    now = utcnow()
    try:
        added = list(db.session.execute(
            _insert().values([{"tag_id": tag.id, column.key: i, "tagged_by_id": actor.id,
                               "tagged_at": now} for i in ids])
            .on_conflict_do_nothing().returning(column)).scalars())
        for record_id in added:
            audit.record(actor.id, "tag", record_type, record_id, {"tag": (None, tag.name)})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return len(added)


def untag_records(actor: User, record_type: Any, ids: Any, tag_id: Any) -> int:
    """Take the tag off the records (scope as for tagging); returns how many lost it."""
    record_type, ids, tag = _checked(actor, record_type, ids, tag_id)
    column = COLUMN[record_type]
    try:
        removed = list(db.session.execute(
            delete(RecordTag).where(RecordTag.tag_id == tag.id, column.in_(ids))
            .returning(column)).scalars())
        for record_id in removed:
            audit.record(actor.id, "untag", record_type, record_id, {"tag": (tag.name, None)})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return len(removed)


def tags_of(record_type: str, ids: Iterable[int]) -> dict[int, list[Tag]]:
    """{record id: its tags by name} for a page of records, in one statement."""
    column = COLUMN[record_type]
    ids = sorted(set(ids))
    out: dict[int, list[Tag]] = {i: [] for i in ids}
    if not ids:
        return out
    for record_id, tag in db.session.execute(
            select(column, Tag).join(Tag, Tag.id == RecordTag.tag_id)
            .where(column.in_(ids)).order_by(Tag.name)).all():
        out[record_id].append(tag)
    return out


def tag_filter(record_type: str, id_column, tag_id: Any):
    """A WHERE clause: the record (`id_column`) carries the tag (lists filter by tag)."""
    tag = get_tag(tag_id)
    column = COLUMN[record_type]
    return id_column.in_(select(column).where(RecordTag.tag_id == tag.id))


def require_tag(tag_id: Any) -> Tag:
    """The tag or NotFound (pages and the API by id)."""
    try:
        return get_tag(tag_id)
    except ValidationFailed:
        raise NotFound(tr(NO_SUCH_TAG))
