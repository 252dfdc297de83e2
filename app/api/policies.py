"""/api/v1/policies/: the rule configuration (Admin writes; Sales Manager and Auditor read),
and /api/v1/policies/effective/<user_id>: a user's effective values with their sources."""
from __future__ import annotations

from flask_appbuilder.api import expose, rison
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.models import Policy
from app.security import RES_POLICY, current_user
from app.services import policy_config


def _answer(policy: Policy) -> dict:
    return schemas.dump(schemas.PolicyResult,
                        {"id": policy.id, "result": policy_config.to_dict(policy)})


class PolicyApi(DocumentedApi):
    resource_name = "policies"
    class_permission_name = RES_POLICY
    openapi_spec_tag = "Policies"
    apispec_parameter_schemas = {
        "PolicyPageQuery": schemas.page_query(policy_config.MAX_PAGE_SIZE)}

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @rison(schemas.PAGE_KEYS)
    @maps_domain_errors
    def list_all(self, **kwargs):
        """Every policy.
        ---
        get:
          summary: 归属策略 — every policy (global, per department, per user), by scope
          parameters:
          - in: query
            name: q
            description: 'rison: (page:0,page_size:500)'
            content:
              application/json:
                schema: {$ref: '#/components/schemas/PolicyPageQuery'}
          answer: PolicyList
          errors: [400, 401, 403]
        """
        args = kwargs.get("rison") or {}
        total, rows = policy_config.page_of_policies(
            args.get("page", 0), args.get("page_size", policy_config.MAX_PAGE_SIZE))
        return self.response(200, **schemas.dump(schemas.PolicyList, {
            "count": total, "result": [policy_config.to_dict(p) for p in rows]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def show(self, pk: int):
        """One policy.
        ---
        get:
          summary: 归属策略 — one policy
          answer: PolicyResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(policy_config.get_policy(pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Create a policy.
        ---
        post:
          summary: 新建策略 — one per target (global, a department, a user); null inherits
          body: PolicyCreate
          answer: PolicyResult
          errors: [400, 401, 403]
        """
        p = policy_config.create_policy(current_user(), load_body(schemas.PolicyCreate))
        return self.response(200, **_answer(p))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def update(self, pk: int):
        """Change a policy.
        ---
        put:
          summary: 修改策略 — the fields given; null inherits
          body: PolicyUpdate
          answer: PolicyResult
          errors: [400, 401, 403, 404]
        """
        p = policy_config.update_policy(current_user(), pk, load_body(schemas.PolicyUpdate))
        return self.response(200, **_answer(p))

    @expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    @maps_domain_errors
    def remove(self, pk: int):
        """Delete a policy.
        ---
        delete:
          summary: 删除策略 — not the global default
          answer: PolicyDeleted
          errors: [400, 401, 403, 404]
        """
        policy_config.delete_policy(current_user(), pk)
        return self.response(200, **schemas.dump(schemas.PolicyDeleted, {"id": pk}))

    @expose("/effective/<int:user_id>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def effective(self, user_id: int):
        """A user's effective policy.
        ---
        get:
          summary: 生效策略 — each field's value and where it comes from (user, department:<name>, global),
            for users in the caller's scope
          answer: EffectivePolicy
          errors: [401, 403, 404]
        """
        return self.response(200, **schemas.dump(schemas.EffectivePolicy, {
            "user_id": user_id,
            "result": policy_config.effective_for(current_user(), user_id)}))
