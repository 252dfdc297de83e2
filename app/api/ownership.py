"""/api/v1/pool/… and /api/v1/ownership/…: claim, release, assign, distribute, lock, unlock.

Each endpoint loads the JSON body, calls one service, and maps a domain error to its 4xx.
"""
from __future__ import annotations

from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import permission_name, protect

from app.api.common import json_body, maps_domain_errors, optional_id
from app.security import RES_OWNERSHIP, current_user
from app.services import assignment, departure, pool, pool_admin, rules
from app.services.errors import ValidationFailed
from app.services.ids import parse_ids


def _dry_run(data: dict) -> bool:
    """Previews are the default: only an explicit `false` commits."""
    dry_run = data.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise ValidationFailed({"dry_run": "dry_run 必须是 true 或 false"})
    return dry_run


class PoolApi(BaseApi):
    resource_name = "pool"
    class_permission_name = RES_OWNERSHIP
    allow_browser_login = True
    openapi_spec_tag = "Ownership"

    @expose("/claim", methods=["POST"])
    @protect()
    @permission_name("claim")
    @maps_domain_errors
    def claim(self):
        """Claim customers from a pool: {customer_ids, pool_id?} -> {customer_ids}."""
        data = json_body()
        ids = pool.claim_from_pool(current_user(), data.get("customer_ids"),
                                   optional_id(data, "pool_id"))
        return self.response(200, customer_ids=ids)

    @expose("/release", methods=["POST"])
    @protect()
    @permission_name("release")
    @maps_domain_errors
    def release(self):
        """Return customers to a pool: {customer_ids, reason, pool_id?} -> {customer_ids}."""
        data = json_body()
        ids = pool.release_to_pool(current_user(), data.get("customer_ids"),
                                   str(data.get("reason") or ""),
                                   optional_id(data, "pool_id"))
        return self.response(200, customer_ids=ids)


class OwnershipApi(BaseApi):
    resource_name = "ownership"
    class_permission_name = RES_OWNERSHIP
    allow_browser_login = True
    openapi_spec_tag = "Ownership"

    @expose("/assign", methods=["POST"])
    @protect()
    @permission_name("assign")
    @maps_domain_errors
    def assign(self):
        """Assign pool customers to a rep: {customer_ids, owner_id, reason?}."""
        data = json_body()
        owner_id = optional_id(data, "owner_id")
        if owner_id is None:
            raise ValidationFailed({"owner_id": "请选择负责人"})
        ids = assignment.assign(current_user(), data.get("customer_ids"), owner_id,
                                data.get("reason"))
        return self.response(200, customer_ids=ids)

    @expose("/distribute", methods=["POST"])
    @protect()
    @permission_name("assign")
    @maps_domain_errors
    def distribute(self):
        """Distribute evenly: {customer_ids, owner_ids, dry_run} -> the plan."""
        data = json_body()
        dry_run = _dry_run(data)
        plan = assignment.distribute(current_user(), data.get("customer_ids"),
                                     data.get("owner_ids"), dry_run=dry_run)
        return self.response(200, **plan.to_dict())

    @expose("/lock", methods=["POST"])
    @protect()
    @permission_name("lock")
    @maps_domain_errors
    def lock(self):
        """Lock own key accounts: {customer_ids} -> the newly locked ids."""
        return self.response(
            200, customer_ids=assignment.lock(current_user(), json_body().get("customer_ids")))

    @expose("/unlock", methods=["POST"])
    @protect()
    @permission_name("unlock")
    @maps_domain_errors
    def unlock(self):
        """Unlock (managers within scope, admins): {customer_ids}."""
        return self.response(
            200, customer_ids=assignment.unlock(current_user(), json_body().get("customer_ids")))

    @expose("/departure", methods=["POST"])
    @protect()
    @permission_name("handover")
    @maps_domain_errors
    def departure(self):
        """Departure handover (admins): {user_id, mode: rep|team|pool, owner_id?, owner_ids?,
        pool_id?, dry_run} -> the plan; without dry_run the user is then marked departed."""
        data = json_body()
        user_id = optional_id(data, "user_id")
        if user_id is None:
            raise ValidationFailed({"user_id": "请选择离职人员"})
        dry_run = _dry_run(data)
        owner_ids = data.get("owner_ids")
        if owner_ids is not None:
            owner_ids = parse_ids(owner_ids, "owner_ids", pool.MAX_BATCH, noun="销售")
        plan = departure.handover(current_user(), user_id, str(data.get("mode") or ""),
                                  owner_id=optional_id(data, "owner_id"),
                                  owner_ids=owner_ids, pool_id=optional_id(data, "pool_id"),
                                  dry_run=dry_run)
        return self.response(200, **plan)

    @expose("/apply-rules", methods=["POST"])
    @protect()
    @permission_name("assign")
    @maps_domain_errors
    def apply_rules(self):
        """Run the assignment rules over pool customers: {customer_ids, dry_run} -> the plan."""
        data = json_body()
        dry_run = _dry_run(data)
        return self.response(200, **rules.apply_to_pool_customers(
            current_user(), data.get("customer_ids"), dry_run=dry_run))

    @expose("/move-pool", methods=["POST"])
    @protect()
    @permission_name("move_pool")
    @maps_domain_errors
    def move_pool(self):
        """Move pool customers to another pool (admins): {customer_ids, pool_id, reason?}."""
        data = json_body()
        ids = pool_admin.move_to_pool(current_user(), data.get("customer_ids"),
                                      optional_id(data, "pool_id"),
                                      str(data.get("reason") or ""))
        return self.response(200, customer_ids=ids)
