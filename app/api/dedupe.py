"""/api/v1/dedupe/check: ask whether a customer would be refused or warned about as a
duplicate, before saving it (for other systems; the forms and the customers API check on
their own)."""
from __future__ import annotations

from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import permission_name, protect

from app.api.common import json_body, maps_domain_errors, optional_id
from app.security import RES_CUSTOMER, current_user
from app.services import dedupe


class DedupeApi(BaseApi):
    resource_name = "dedupe"
    class_permission_name = RES_CUSTOMER
    allow_browser_login = True
    openapi_spec_tag = "Dedupe"

    @expose("/check", methods=["POST"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def check(self):
        """Body: customer fields ({name, customer_type, mobile, phone, email, city, address,
        birthday, birthday_lunar}, any subset) and optional exclude_id (the customer being
        edited). Answer: {blocked, warned, matches: [{rule, action, customer_id,
        customer_name, holder, locked, score, message}]}."""
        body = json_body()
        result = dedupe.check(current_user(), body, optional_id(body, "exclude_id"))
        return self.response(200, **result)
