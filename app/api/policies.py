"""/api/v1/policies/: the rule configuration (Admin writes; Sales Manager and Auditor read),
and /api/v1/policies/effective/<user_id>: a user's effective values with their sources."""
from __future__ import annotations

from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select

from app.api.ownership import _body, _run
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
    def show(self, pk: int):
        return _run(lambda: self.response(200, result=policy_config.to_dict(
            policy_config.get_policy(pk))))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    def create(self):
        """{scope, department_id?, user_id?, max_customers?, count_won?, …}; null inherits."""
        def go():
            p = policy_config.create_policy(current_user(), _body())
            return self.response(200, id=p.id, result=policy_config.to_dict(p))
        return _run(go)

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    def update(self, pk: int):
        def go():
            p = policy_config.update_policy(current_user(), pk, _body())
            return self.response(200, id=p.id, result=policy_config.to_dict(p))
        return _run(go)

    @expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    def remove(self, pk: int):
        def go():
            policy_config.delete_policy(current_user(), pk)
            return self.response(200, id=pk)
        return _run(go)

    @expose("/effective/<int:user_id>", methods=["GET"])
    @protect()
    @permission_name("read")
    def effective(self, user_id: int):
        """Each field's value and where it comes from (user / department:<name> / global)."""
        def go():
            return self.response(200, user_id=user_id,
                                 result=policy_config.effective_for(current_user(), user_id))
        return _run(go)
