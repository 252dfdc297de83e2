"""/api/v1/dedupe/check: ask whether a customer would be refused or warned about as a
duplicate, before saving it (for other systems; the forms and the customers API check on
their own)."""
from __future__ import annotations

from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.security import RES_CUSTOMER, current_user
from app.services import dedupe


class DedupeApi(DocumentedApi):
    resource_name = "dedupe"
    class_permission_name = RES_CUSTOMER
    openapi_spec_tag = "Dedupe"

    @expose("/check", methods=["POST"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def check(self):
        """Would these values be refused or warned about as a duplicate?
        ---
        post:
          summary: 查重 — the dedupe rules' answer for a customer's values (any subset); nothing is
            saved
          body: DedupeCheckRequest
          answer: DedupeCheckResult
          errors: [400, 401, 403, 404]
        """
        body = load_body(schemas.DedupeCheckRequest)
        exclude_id = body.pop("exclude_id", None)
        result = dedupe.check(current_user(), body, exclude_id)
        return self.response(200, **schemas.dump(schemas.DedupeCheckResult, result))
