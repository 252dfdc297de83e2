"""/api/v1/policies/: the rule configuration (Admin writes; Sales Manager and Auditor read),
and /api/v1/policies/effective/<user_id>: a user's effective values with their sources."""
from __future__ import annotations

from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select

from app.api.common import json_body, maps_domain_errors
from app.extensions import db
from app.models import Policy
from app.security import RES_POLICY, current_user
from app.services import policy_config


class PolicyApi(BaseApi):
    resource_name = "policies"
    class_permission_name = RES_POLICY
    allow_browser_login = True
    openapi_spec_tag = "Policies"

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    def list_all(self):
        rows = db.session.execute(select(Policy).order_by(Policy.scope, Policy.id)).scalars()
        result = [policy_config.to_dict(p) for p in rows]
        return self.response(200, count=len(result), result=result)

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def show(self, pk: int):
        return self.response(200, result=policy_config.to_dict(policy_config.get_policy(pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """{scope, department_id?, user_id?, max_customers?, count_won?, …}; null inherits."""
        p = policy_config.create_policy(current_user(), json_body())
        return self.response(200, id=p.id, result=policy_config.to_dict(p))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def update(self, pk: int):
        p = policy_config.update_policy(current_user(), pk, json_body())
        return self.response(200, id=p.id, result=policy_config.to_dict(p))

    @expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    @maps_domain_errors
    def remove(self, pk: int):
        policy_config.delete_policy(current_user(), pk)
        return self.response(200, id=pk)

    @expose("/effective/<int:user_id>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def effective(self, user_id: int):
        """Each field's value and where it comes from (user / department:<name> / global)."""
        return self.response(200, user_id=user_id,
                             result=policy_config.effective_for(current_user(), user_id))
