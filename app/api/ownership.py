"""/api/v1/pool/… and /api/v1/ownership/…: claim, release, assign, distribute, lock, unlock.

Each endpoint loads the JSON body with its schema (app.api.schemas, the one its docstring
declares), calls one service, and maps a domain error to its 4xx.
"""
from __future__ import annotations

from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.security import RES_OWNERSHIP, current_user
from app.services import assignment, departure, pool, pool_admin, rules


class PoolApi(DocumentedApi):
    resource_name = "pool"
    class_permission_name = RES_OWNERSHIP
    openapi_spec_tag = "Ownership"

    @expose("/claim", methods=["POST"])
    @protect()
    @permission_name("claim")
    @maps_domain_errors
    def claim(self):
        """Claim customers from a pool.
        ---
        post:
          summary: 领取 — claim pool customers (cap, daily limit and cooldown apply)
          body: ClaimRequest
          answer: CustomerIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.ClaimRequest)
        ids = pool.claim_from_pool(current_user(), data["customer_ids"], data.get("pool_id"))
        return self.response(200, **schemas.dump(schemas.CustomerIds, {"customer_ids": ids}))

    @expose("/release", methods=["POST"])
    @protect()
    @permission_name("release")
    @maps_domain_errors
    def release(self):
        """Return customers to a pool.
        ---
        post:
          summary: 退回公海 — release own customers to a pool, with a reason
          body: ReleaseRequest
          answer: CustomerIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.ReleaseRequest)
        ids = pool.release_to_pool(current_user(), data["customer_ids"],
                                   data.get("reason") or "", data.get("pool_id"))
        return self.response(200, **schemas.dump(schemas.CustomerIds, {"customer_ids": ids}))


class OwnershipApi(DocumentedApi):
    resource_name = "ownership"
    class_permission_name = RES_OWNERSHIP
    openapi_spec_tag = "Ownership"

    @expose("/assign", methods=["POST"])
    @protect()
    @permission_name("assign")
    @maps_domain_errors
    def assign(self):
        """Assign pool customers to a rep.
        ---
        post:
          summary: 分配 — assign pool customers to one rep (managers, admins, pool admins)
          body: AssignRequest
          answer: CustomerIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.AssignRequest)
        ids = assignment.assign(current_user(), data["customer_ids"], data["owner_id"],
                                data.get("reason"))
        return self.response(200, **schemas.dump(schemas.CustomerIds, {"customer_ids": ids}))

    @expose("/distribute", methods=["POST"])
    @protect()
    @permission_name("assign")
    @maps_domain_errors
    def distribute(self):
        """Distribute pool customers evenly.
        ---
        post:
          summary: 平均分配 — fewest-owned first; a preview unless dry_run is false
          body: DistributeRequest
          answer: DistributionPlan
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.DistributeRequest)
        plan = assignment.distribute(current_user(), data["customer_ids"], data["owner_ids"],
                                     dry_run=data["dry_run"])
        return self.response(200, **schemas.dump(schemas.DistributionPlan, plan.to_dict()))

    @expose("/lock", methods=["POST"])
    @protect()
    @permission_name("lock")
    @maps_domain_errors
    def lock(self):
        """Lock own key accounts.
        ---
        post:
          summary: 锁定 — lock own customers against reclaim (the lock cap applies)
          body: CustomerIdsRequest
          answer: CustomerIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.CustomerIdsRequest)
        ids = assignment.lock(current_user(), data["customer_ids"])
        return self.response(200, **schemas.dump(schemas.CustomerIds, {"customer_ids": ids}))

    @expose("/unlock", methods=["POST"])
    @protect()
    @permission_name("unlock")
    @maps_domain_errors
    def unlock(self):
        """Unlock customers.
        ---
        post:
          summary: 解锁 — managers within their scope, admins
          body: CustomerIdsRequest
          answer: CustomerIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.CustomerIdsRequest)
        ids = assignment.unlock(current_user(), data["customer_ids"])
        return self.response(200, **schemas.dump(schemas.CustomerIds, {"customer_ids": ids}))

    @expose("/departure", methods=["POST"])
    @protect()
    @permission_name("handover")
    @maps_domain_errors
    def departure(self):
        """Departure handover.
        ---
        post:
          summary: 离职交接 — hand a leaving user's customers over (admins); without dry_run the user
            is then marked departed
          body: DepartureRequest
          answer: DeparturePlan
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.DepartureRequest)
        plan = departure.handover(current_user(), data["user_id"], data["mode"],
                                  owner_id=data.get("owner_id"), owner_ids=data.get("owner_ids"),
                                  pool_id=data.get("pool_id"), dry_run=data["dry_run"])
        return self.response(200, **schemas.dump(schemas.DeparturePlan, plan))

    @expose("/apply-rules", methods=["POST"])
    @protect()
    @permission_name("assign")
    @maps_domain_errors
    def apply_rules(self):
        """Run the assignment rules over pool customers.
        ---
        post:
          summary: 按规则分配 — place pool customers by the assignment rules
          body: ApplyRulesRequest
          answer: RulesPlan
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.ApplyRulesRequest)
        plan = rules.apply_to_pool_customers(current_user(), data["customer_ids"],
                                             dry_run=data["dry_run"])
        return self.response(200, **schemas.dump(schemas.RulesPlan, plan))

    @expose("/move-pool", methods=["POST"])
    @protect()
    @permission_name("move_pool")
    @maps_domain_errors
    def move_pool(self):
        """Move pool customers to another pool.
        ---
        post:
          summary: 转移公海 — move pool customers to another pool (admins)
          body: MovePoolRequest
          answer: CustomerIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.MovePoolRequest)
        ids = pool_admin.move_to_pool(current_user(), data["customer_ids"], data["pool_id"],
                                      data.get("reason") or "")
        return self.response(200, **schemas.dump(schemas.CustomerIds, {"customer_ids": ids}))
