"""The contact details rule (DESIGN.md), one rule for every path.

Mobile, phone and e-mail of a customer and of its contacts are shown in full to admins and
back-office staff (they maintain every record), to owners and managers for customers in the
scope they may edit (a share is read-only: masked), and to a pool's admins for that pool's
customers. Everyone else sees them masked (138****8000, z***@qq.com): auditors, marketing
(even as a pool's admin), read-only
shares, reps and managers browsing a pool. The service desk (客服, 客服主管) reads the customers
of its tickets: their contact details in full while the customer holds an open ticket in
its scope, masked otherwise. The pages, the API, the exports and the pool
pages all ask `rule_for(user)`; the normalised keys (mobile_e164, …) follow their field.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Optional

from sqlalchemy import select

from app.extensions import db
from app.models import Ownership, User
from app.security import (ROLE_ADMIN, ROLE_STAFF, Scope, has_role, marketing_only, scope_of,
                          visible_owner_ids)
from app.services.errors import lazy_tr
from app.services.normalize import mask_email, mask_phone

# (owner_id, pool_id[, customer_id]) of a customer -> may the user read its contact details
# in full? The customer id matters to the service desk only (an open ticket); a caller that
# does not pass it gets the masked answer for them.
Rule = Callable[..., bool]

PHONE_FIELDS = ("mobile", "phone", "mobile_e164", "phone_e164")
EMAIL_FIELDS = ("email", "email_norm")
CONTACT_FIELDS = PHONE_FIELDS + EMAIL_FIELDS
MASKED_REFUSAL = lazy_tr("This is a masked value (such as 138****8000); write the whole number "
                         "or address")
_MASKED = re.compile(r"\*{3}")


def rule_for(user: Optional[User]) -> Rule:
    """The user's rule, with what it needs read once (owners in the edit scope, pools
    administered, for the service desk the customers holding an open ticket it reads)."""
    base = _sales_rule(user)
    from app.services.tickets import is_service_user

    if not is_service_user(user) or has_role(user, ROLE_ADMIN, ROLE_STAFF):
        return lambda owner_id, pool_id, customer_id=None: base(owner_id, pool_id)
    # 客服 / 客服主管: in full while the customer holds an open ticket in their scope.
    from app.services.tickets import open_customer_ids

    open_ids = open_customer_ids(user)
    return lambda owner_id, pool_id, customer_id=None: (
        customer_id is not None and customer_id in open_ids) or base(owner_id, pool_id)


def _sales_rule(user: Optional[User]) -> Rule:
    if user is None:
        return lambda owner_id, pool_id: False
    if has_role(user, ROLE_ADMIN, ROLE_STAFF):
        return lambda owner_id, pool_id: True
    if marketing_only(user):
        # 市场专员 read every customer masked, a pool they administer included: they take no
        # ownership action, so nothing of a customer's is theirs to call.
        return lambda owner_id, pool_id: False
    from app.services.pool_admin import admin_pool_ids

    pools = admin_pool_ids(user)
    scope = scope_of(user)
    if scope is None or scope == Scope.ALL:
        # Scope ALL without admin or staff: the auditor, who reads everything, masked.
        return lambda owner_id, pool_id: pool_id is not None and pool_id in pools
    owners = visible_owner_ids(user, scope)
    return lambda owner_id, pool_id: (owner_id is not None and owner_id in owners) or (
        pool_id is not None and pool_id in pools)


def current_rule() -> Rule:
    """rule_for(the signed-in user), read once per request."""
    from flask import g, has_request_context

    from app.security import current_user

    if not has_request_context():
        return rule_for(current_user())
    if "guishu_contact_rule" not in g:
        g.guishu_contact_rule = rule_for(current_user())
    return g.guishu_contact_rule


def holder_of(customer_id: int) -> tuple[Optional[int], Optional[int]]:
    row = db.session.execute(select(Ownership.owner_id, Ownership.pool_id).where(
        Ownership.customer_id == customer_id)).first()
    return (row.owner_id, row.pool_id) if row else (None, None)


def shown(field: str, value: Any, full: bool) -> Any:
    """`value` of a contact field as the reader may see it."""
    if full or not value:
        return value
    if field in EMAIL_FIELDS:
        return mask_email(value)
    if field in PHONE_FIELDS:
        return mask_phone(value)
    return value


def mask_item(item: dict, full: bool) -> dict:
    """A serialised customer or contact with its contact fields as the reader may see them."""
    if not full:
        for field in CONTACT_FIELDS:
            if field in item:
                item[field] = shown(field, item[field], False)
    return item


def customer_field(record, field: str, as_field: Optional[str] = None) -> Any:
    """A field of a customer, or of a record about one (a contact, a care message: through
    its `customer`), for the signed-in user; `as_field` names the contact field a value
    holding one under another name is (a care message's address: "email" or "mobile")."""
    target = getattr(record, "customer", None) or record
    ownership = getattr(target, "ownership", None)
    owner_id = ownership.owner_id if ownership else None
    pool_id = ownership.pool_id if ownership else None
    return shown(as_field or field, getattr(record, field),
                 current_rule()(owner_id, pool_id, getattr(target, "id", None)))


def audit_changes(entry) -> Any:
    """An audit entry's changes as the reader may see them: the contact details in the
    changes of a customer or a contact, by the rule for that customer (a deleted one has no
    holder: masked but for admins and staff)."""
    changes = entry.changes
    if entry.object_type not in ("customer", "contact") or not isinstance(changes, dict) \
            or not any(k in CONTACT_FIELDS for k in changes):
        return changes
    customer_id = entry.object_id
    if entry.object_type == "contact":
        from app.models import Contact

        customer_id = db.session.execute(select(Contact.customer_id).where(
            Contact.id == entry.object_id)).scalar()
    if current_rule()(*holder_of(customer_id), customer_id):
        return changes
    return {k: ([shown(k, v, False) for v in value] if isinstance(value, (list, tuple))
                else shown(k, value, False)) if k in CONTACT_FIELDS else value
            for k, value in changes.items()}


def is_masked(value: Any) -> bool:
    """A value that is a mask (138****8000, z***@qq.com): never to be saved back."""
    return isinstance(value, str) and _MASKED.search(value) is not None
