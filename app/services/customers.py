"""Create, edit and delete customers and contacts: validation, normalised keys, placement."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Optional

from flask import current_app, has_app_context
from lunardate import LunarDate
from sqlalchemy import select

from app.extensions import db
from app.models import Contact, Customer, Ownership, User
from app.models.customer import CUSTOMER_TYPES
from app.queue import enqueue
from app.security import (ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, Scope,
                          non_owner_ids_select,
                          can_see_customer, can_write_customer, has_role, scope_of,
                          visible_owner_ids_select)
from app.services import audit, dedupe, limits, ownership
from app.services.errors import (NO_SUCH_CUSTOMER, UNKNOWN_FIELD, GuishuError, OutOfScope,
                                 PermissionDenied, ValidationFailed, tr)
from app.services.normalize import (NORMALIZER_VERSION, InvalidValue, name_pinyin,
                                    normalize_address, normalize_email, normalize_mobile,
                                    normalize_person_name, normalize_phone, split_company_name)
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import local_today

# Fields a user edits; ownership columns change only through the ownership services.
CUSTOMER_FIELDS = ("name", "customer_type", "industry", "province", "city", "address", "phone",
                   "mobile", "email", "source", "product_line", "birthday", "birthday_lunar",
                   "notes")
CONTACT_FIELDS = ("name", "title", "phone", "mobile", "email", "is_primary", "birthday",
                  "birthday_lunar", "notes")
# Single-line fields: their column's length; notes: limits.NOTE.
_MAX_LEN = {"name": limits.NAME, "industry": 100, "province": 50, "city": 50, "address": 300,
            "phone": 60, "mobile": 60, "email": 200, "source": 100, "product_line": 100,
            "title": 100, "notes": limits.NOTE}
_CONTACT_MAX_LEN = dict(_MAX_LEN, name=100)  # contact.name is VARCHAR(100)
_BIRTHDAY_RE = re.compile(r"^\s*(?:(\d{4})[-/.年])?\s*(\d{1,2})[-/.月]\s*(\d{1,2})日?\s*$")


def phone_region() -> str:
    """The region numbers without a country code are read in (PHONE_DEFAULT_REGION)."""
    return current_app.config.get("PHONE_DEFAULT_REGION", "CN") if has_app_context() else "CN"


_region = phone_region


def parse_birthday(text: Optional[str], lunar: bool) -> tuple[Optional[int], Optional[int],
                                                             Optional[int]]:
    """'1985-03-12', '03-12', '1985年3月12日' -> (year|None, month, day); checks the calendar."""
    if text is None or not str(text).strip():
        return None, None, None
    m = _BIRTHDAY_RE.match(str(text))
    if not m:
        raise InvalidValue(tr("A birthday is written YYYY-MM-DD or MM-DD"))
    year = int(m.group(1)) if m.group(1) else None
    month, day = int(m.group(2)), int(m.group(3))
    if lunar:
        if not (1 <= month <= 12 and 1 <= day <= 30):
            raise InvalidValue(tr("Lunar birthday: month 1–12, day 1–30"))
        if year is not None:
            try:
                LunarDate(year, month, day).to_solar_date()  # the constructor checks nothing
            except ValueError:
                # A lunar month has 29 or 30 days depending on the year; keep 30 for "month end".
                if day != 30:
                    raise InvalidValue(tr("Lunar month %(month)s of %(year)s has no day %(day)s",
                                          year=year, month=month, day=day))
    else:
        try:
            dt.date(year or 2000, month, day)  # 2000 is a leap year: 02-29 without a year is fine
        except ValueError:
            raise InvalidValue(tr("The birthday is not a valid date"))
    if year is not None and not (1900 <= year <= local_today().year):
        raise InvalidValue(tr("The birth year is not plausible"))
    return year, month, day


class _NotText(ValueError):
    pass


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _NotText(tr("Must be text"))
    if is_unclean(value):
        raise _NotText(str(UNCLEAN_MESSAGE))
    text = str(value).strip()
    return text or None


_KEY_FIELDS = {"phone": "phone_e164", "mobile": "mobile_e164", "email": "email_norm"}


def _normaliser(field: str, region: str):
    return {"phone": lambda v: normalize_phone(v, region),
            "mobile": lambda v: normalize_mobile(v, region),
            "email": normalize_email}[field]


def _add_normalised_keys(out: dict[str, Any], errors: dict[str, str], region: str) -> None:
    """Store each contact field's normalised key beside it, or record why it is invalid."""
    from app.services.masking import MASKED_REFUSAL, is_masked

    for field, key_field in _KEY_FIELDS.items():
        if field in out and field not in errors and is_masked(out[field]):
            errors[field] = str(MASKED_REFUSAL)  # a masked value shown somewhere, sent back
        elif field in out and field not in errors:
            try:
                out[key_field] = _normaliser(field, region)(out[field])
            except InvalidValue as exc:
                errors[field] = str(exc)


def text_keys(customer_type: str, name: Optional[str], address: Optional[str]) -> dict:
    """The dedupe keys of a name and an address: a company's core name, region and legal
    form (北京百度网讯科技有限公司 -> 百度网讯科技 / 北京 / 有限公司) or a person's folded
    name and its pinyin; the folded address."""
    if customer_type == "person":
        core, region, form = normalize_person_name(name), None, None
        pinyin = name_pinyin(name)
    else:
        split = split_company_name(name)
        core, region, form = (split.core, split.region, split.legal_form or None) if split \
            else (None, None, None)
        pinyin = None  # persons are matched by pinyin, companies by their core name
    return {"name_core": core or None, "name_block": core[:2] if core else None,
            "name_region": region, "legal_form": form,
            "name_pinyin": pinyin or None, "address_norm": normalize_address(address)}


def refresh_row_keys(customer: Customer, region: Optional[str] = None) -> None:
    """Every stored key of one customer from its raw values, by the current normaliser. A raw
    value that no longer normalises keeps its old key (left for review)."""
    region = region or _region()
    for field, key_field in _KEY_FIELDS.items():
        try:
            setattr(customer, key_field, _normaliser(field, region)(getattr(customer, field)))
        except InvalidValue:
            pass
    for key, value in text_keys(customer.customer_type, customer.name,
                                customer.address).items():
        setattr(customer, key, value)
    customer.norm_version = NORMALIZER_VERSION


def _add_birthday_parts(out: dict[str, Any], errors: dict[str, str]) -> None:
    """"birthday" text and the lunar flag -> birth_year / birth_month / birth_day."""
    if "birthday" in out or "birthday_lunar" in out:
        lunar = out.get("birthday_lunar", False)
        try:
            y, m, d = parse_birthday(out.pop("birthday", None), lunar)
        except InvalidValue as exc:
            errors["birthday"] = str(exc)
        else:
            out.update(birth_year=y, birth_month=m, birth_day=d)


def _flag(value: Any) -> bool:
    return bool(value) and str(value).lower() not in ("0", "false", "n", "no", "")


def clean_customer_data(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate and normalise user input; raise ValidationFailed naming every bad field."""
    unknown = set(data) - set(CUSTOMER_FIELDS)
    errors: dict[str, str] = {f: UNKNOWN_FIELD for f in unknown}
    out: dict[str, Any] = {}
    region = _region()
    for field in CUSTOMER_FIELDS:
        if partial and field not in data:
            continue
        value = data.get(field)
        if field == "birthday_lunar":
            out[field] = _flag(value)
            continue
        try:
            text = _text(value)
        except _NotText as exc:
            errors[field] = str(exc)
            continue
        if text is not None and field in _MAX_LEN and len(text) > _MAX_LEN[field]:
            errors[field] = limits.too_long(text, _MAX_LEN[field])
            continue
        out[field] = text
    if (not partial or "name" in data) and "name" not in errors:
        if not out.get("name"):
            errors["name"] = tr("The customer name cannot be empty")
    if not partial or "customer_type" in data:
        out["customer_type"] = out.get("customer_type") or "company"
        if out["customer_type"] not in CUSTOMER_TYPES:
            errors["customer_type"] = tr("The customer type can only be company or person")
    _add_normalised_keys(out, errors, region)
    _add_birthday_parts(out, errors)
    if errors:
        raise ValidationFailed(errors)
    if not partial:  # a whole record: every key is computed here, by this normaliser
        out.update(text_keys(out["customer_type"], out.get("name"), out.get("address")))
        out["norm_version"] = NORMALIZER_VERSION
    return out


def _load(actor: User, customer_id: int, *, write: bool = True) -> Customer:
    customer = db.session.get(Customer, customer_id)
    allowed = can_write_customer if write else can_see_customer
    if customer is None or not allowed(actor, customer_id):
        # Same answer for "missing" and "not yours": ids outside the scope are not confirmed.
        raise OutOfScope(tr(NO_SUCH_CUSTOMER))
    return customer


def get_customer(actor: User, customer_id: int) -> Customer:
    return _load(actor, customer_id, write=False)


def _queue_recheck(customer_id: int) -> None:
    """Queue the after-save duplicate re-check (nothing happens if Redis is down: the save
    itself was checked, only a same-second race would go unflagged)."""
    enqueue("jobs.customers.recheck_duplicates", customer_id)


def get_customer_for_write(actor: User, customer_id: int) -> Customer:
    """The customer if the actor may change it (shares are read-only)."""
    _require_writer(actor)
    return _load(actor, customer_id)


def _require_writer(actor: User) -> None:
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF):
        raise PermissionDenied(tr("Your role cannot add or change customers"))


def assignable_owner_ids(actor: User):
    """SELECT of the users the actor may name as owner of a new customer (before activity
    checks): anyone but marketing and the service desk for admins and staff, the manager's scope for managers,
    else oneself."""
    if has_role(actor, ROLE_ADMIN, ROLE_STAFF):
        return select(User.id).where(User.id.not_in(non_owner_ids_select()))
    if has_role(actor, ROLE_MANAGER):
        return visible_owner_ids_select(actor, scope_of(actor) or Scope.OWN)
    return select(User.id).where(User.id == actor.id)


def resolve_new_owner(actor: User, owner_id: Optional[int]) -> Optional[int]:
    """Who owns a customer the actor creates (None = the default pool).

    Reps and managers own what they create (first contact) unless a manager picks another rep
    in their scope; back-office staff and admins put it in the pool unless they pick an owner.
    """
    if owner_id is not None:
        allowed = db.session.execute(
            assignable_owner_ids(actor).where(User.id == owner_id)).first()
        if allowed is None:
            if has_role(actor, ROLE_MANAGER):
                raise ValidationFailed({"owner": tr("You can only name an owner within your data "
                                                     "scope")})
            raise ValidationFailed({"owner": tr("A customer a sales rep creates is their own; "
                                                 "it cannot name someone else")})
        return owner_id
    if has_role(actor, ROLE_ADMIN, ROLE_STAFF):
        return None
    return actor.id


def create_customer(actor: User, data: dict[str, Any], *, owner_id: Optional[int] = None,
                    pool_id: Optional[int] = None, commit: bool = True,
                    confirm_duplicates: bool = False) -> Customer:
    """Validate, normalise, dedupe-check and insert a customer with its ownership row and
    'created' event. A blocking duplicate refuses; a warning one needs confirm_duplicates."""
    _require_writer(actor)
    values = clean_customer_data(data)
    confirmed = dedupe.enforce(values, confirmed=confirm_duplicates)
    owner = resolve_new_owner(actor, owner_id)
    rule = None
    if owner is None and pool_id is None:
        # Nobody made first contact: the assignment rules decide, else the default pool.
        from app.services import rules

        placement = rules.place_new(dict(values, lifecycle="potential"))
        if placement is not None:
            owner, pool_id, rule = placement.owner_id, placement.pool_id, placement.rule
    if owner is None and pool_id is None:
        pool_id = ownership.default_pool().id
    if owner is not None:
        pool_id = None
    customer = Customer(created_by_id=actor.id, **values)
    db.session.add(customer)
    try:
        ownership.place_new_customer(
            customer, actor_id=actor.id, owner_id=owner, pool_id=pool_id,
            how="rule-assigned" if rule and owner else "created",
            rule=f"rule:{rule}" if rule else None)
        audit.record(actor.id, "create", "customer", customer.id)
        dedupe.record_confirmed(actor.id, customer.id, confirmed)
        if commit:
            db.session.commit()
            _queue_recheck(customer.id)
    except Exception:
        db.session.rollback()
        raise
    return customer


def update_customer(actor: User, customer_id: int, data: dict[str, Any],
                    confirm_duplicates: bool = False) -> Customer:
    _require_writer(actor)
    customer = _load(actor, customer_id)
    values = clean_customer_data(data, partial=True)
    changes = audit.diff(customer, values)
    before = dedupe.values_of(customer)
    for key, value in values.items():
        setattr(customer, key, value)
    refresh_row_keys(customer)  # the keys follow the merged row, whatever was changed
    after = dedupe.values_of(customer)
    recheck = after != before  # editing the notes of a known near-duplicate asks nothing
    if recheck:
        try:
            confirmed = dedupe.enforce(after, exclude_ids=[customer.id],
                                       confirmed=confirm_duplicates)
        except GuishuError:
            db.session.rollback()
            raise
        dedupe.record_confirmed(actor.id, customer.id, confirmed)
    if changes:
        audit.record(actor.id, "update", "customer", customer.id, changes)
    db.session.commit()
    if recheck:
        _queue_recheck(customer.id)
    return customer


def delete_customer(actor: User, customer_id: int, reason: str = "删除客户") -> None:
    """Admins only: removes the record; its ownership events stay in the history."""
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can delete customers"))
    customer = _load(actor, customer_id)
    own: Optional[Ownership] = customer.ownership
    ownership.record_deletion(customer.id, own, actor.id, reason)
    audit.record(actor.id, "delete", "customer", customer.id, {"name": (customer.name, None)})
    db.session.delete(customer)
    db.session.commit()


# --- contacts -----------------------------------------------------------------------------
def clean_contact_data(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    region = _region()
    for field in CONTACT_FIELDS:
        if partial and field not in data:
            continue
        value = data.get(field)
        if field == "is_primary":
            out[field] = bool(value)
            continue
        if field == "birthday_lunar":
            out[field] = _flag(value)
            continue
        try:
            text = _text(value)
        except _NotText as exc:
            errors[field] = str(exc)
            continue
        if text is not None and field in _CONTACT_MAX_LEN \
                and len(text) > _CONTACT_MAX_LEN[field]:
            errors[field] = limits.too_long(text, _CONTACT_MAX_LEN[field])
            continue
        out[field] = text
    if (not partial or "name" in data) and "name" not in errors and not out.get("name"):
        errors["name"] = tr("The contact name cannot be empty")
    _add_normalised_keys(out, errors, region)
    _add_birthday_parts(out, errors)
    if errors:
        raise ValidationFailed(errors)
    return out


def add_contact(actor: User, customer_id: int, data: dict[str, Any]) -> Contact:
    _require_writer(actor)
    _load(actor, customer_id)
    values = clean_contact_data(data)
    # A contact's numbers and address are checked against everyone but its own company.
    dedupe.enforce({}, exclude_ids=[customer_id], contacts=[values], confirmed=True)
    contact = Contact(customer_id=customer_id, **values)
    db.session.add(contact)
    db.session.flush()
    audit.record(actor.id, "create", "contact", contact.id)
    db.session.commit()
    return contact


def _load_contact(actor: User, contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None or not can_write_customer(actor, contact.customer_id):
        raise OutOfScope(tr("The contact does not exist or is outside your data scope"))
    return contact


def update_contact(actor: User, contact_id: int, data: dict[str, Any]) -> Contact:
    _require_writer(actor)
    contact = _load_contact(actor, contact_id)
    values = clean_contact_data(data, partial=True)
    if "customer_id" in data and int(data["customer_id"]) != contact.customer_id:
        raise ValidationFailed({"customer": tr("A contact cannot move to another customer")})
    changed = {k: v for k, v in values.items()
               if k in ("mobile_e164", "phone_e164", "email_norm")
               and v != getattr(contact, k)}
    if changed:
        dedupe.enforce({}, exclude_ids=[contact.customer_id], contacts=[changed],
                       confirmed=True)
    changes = audit.diff(contact, values)
    for key, value in values.items():
        setattr(contact, key, value)
    if changes:
        audit.record(actor.id, "update", "contact", contact.id, changes)
    db.session.commit()
    return contact


def delete_contact(actor: User, contact_id: int) -> None:
    _require_writer(actor)
    contact = _load_contact(actor, contact_id)
    audit.record(actor.id, "delete", "contact", contact.id, {"name": (contact.name, None)})
    db.session.delete(contact)
    db.session.commit()


def refresh_normalised_keys(customer_ids: Optional[list[int]] = None, batch: int = 500) -> int:
    """Recompute stored keys of customers written by an older normaliser (or the given ids).

    Rows whose raw value no longer normalises keep their old key and are left for review.
    """
    region = _region()
    q = select(Customer).order_by(Customer.id)
    if customer_ids is not None:
        q = q.where(Customer.id.in_(customer_ids))
    else:
        q = q.where(Customer.norm_version < NORMALIZER_VERSION)
    done = 0
    for customer in db.session.execute(q.limit(batch)).scalars():
        refresh_row_keys(customer, region)
        done += 1
    db.session.commit()
    return done


def refresh_all_normalised_keys(customer_ids: Optional[list[int]] = None) -> int:
    """refresh_normalised_keys batch after batch until nothing is stale (or the given ids are
    done); returns how many customers were rewritten."""
    total = 0
    while True:
        done = refresh_normalised_keys(customer_ids)
        total += done
        # A given id list is one pass; the stale-row query shrinks until nothing is left.
        if customer_ids is not None or done == 0:
            return total
