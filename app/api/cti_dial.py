"""/api/v1/cti/dial: click-to-call (点击拨号). JWT for programs; the pages' 📞 buttons post
it with the session and the X-CSRFToken header (app.api.csrf). The answer names the call and
its reference, never the number."""
from __future__ import annotations

from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from marshmallow import fields

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.api.schemas import Answer, Body, Choice, RecordId
from app.security import CAN_DIAL, RES_CTI_DIAL, current_user
from app.services import cti_dial
from app.services.errors import tr


class CtiDialRequest(Body):
    customer_id = RecordId(allow_none=True, metadata={
        "description": "a customer in scope, or in a pool the caller belongs to"})
    contact_id = RecordId(allow_none=True, metadata={"description": "a contact of such a "
                                                                    "customer"})
    lead_id = RecordId(allow_none=True, metadata={"description": "a lead in scope"})
    number = Choice(cti_dial.NUMBERS, message=lambda: tr(
        "number can only be: %(choices)s", choices=tr(", ").join(cti_dial.NUMBERS)),
        allow_none=True, metadata={"description": "mobile | phone (default: the mobile, "
                                                  "else the phone)"})


class CtiDialAnswer(Answer):
    call_id = fields.Integer(required=True)
    crm_ref = fields.String(required=True, metadata={
        "description": "the reference the dialer got; the call's events carry it back"})


COMPONENTS = schemas.COMPONENTS + (CtiDialRequest, CtiDialAnswer)


class CtiDialApi(DocumentedApi):
    resource_name = "cti"
    class_permission_name = RES_CTI_DIAL
    openapi_spec_tag = "Call centre"
    openapi_spec_component_schemas = COMPONENTS
    responses = dict(schemas.ERROR_RESPONSES, **{"502": schemas.error_response_spec(
        "The dialer did not take the call (code dialer_failed); the call is marked failed")})

    @expose("/dial", methods=["POST"])
    @protect()
    @permission_name(CAN_DIAL)
    @maps_domain_errors
    def dial(self):
        """Click-to-call.
        ---
        post:
          summary: 点击拨号 — ring the caller's agent phone, then the record's number
          body: CtiDialRequest
          answer: CtiDialAnswer
          errors: [400, 401, 403, 404, 429, 502]
        """
        data = load_body(CtiDialRequest)
        call = cti_dial.dial(current_user(), data)
        return self.response(200, **schemas.dump(CtiDialAnswer, {"call_id": call.id,
                                                                 "crm_ref": call.crm_ref}))
