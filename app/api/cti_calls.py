"""/api/v1/cti/route (which agent or queue takes a call: an API key of purpose call_events)
and /api/v1/cti/calls (the call log: JWT, scoped). Load, call app.services.cti_routing /
cti_calls, map errors.

CSRF: both are GET (nothing changes but the key's audit row and last use); /cti/route
authenticates by its API key only and never reads the session (as app.api.hooks).
"""
from __future__ import annotations

from flask import request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import cti_schemas as cs, schemas
from app.api.common import DocumentedApi, maps_domain_errors
from app.security import RES_CTI_CALL, current_user
from app.services import api_keys, cti_calls, cti_routing
from app.services.errors import ValidationFailed, tr


def call_events_key():
    """The request's API key of purpose call_events, at the CTI rate (CTI_KEY_RATE_PER_MINUTE,
    not the webhooks' API_KEY_RATE_PER_MINUTE); refusals 401 / 403 / 429, audited."""
    return api_keys.authenticate(api_keys.key_from_headers(request.headers), "call_events",
                                 endpoint=request.path, rate=cti_routing.key_rate())


class CtiRouteApi(DocumentedApi):
    resource_name = "cti"
    openapi_spec_tag = "Call centre"
    allow_browser_login = False
    openapi_spec_component_schemas = schemas.COMPONENTS + cs.COMPONENTS

    @expose("/route", methods=["GET"])
    @maps_domain_errors
    def route(self):
        """Which agent or queue the platform should ring for a caller.
        ---
        get:
          summary: 来电路由 — the dedicated service agent of the customer if present, else its owner
            if present, else the team queue of the owner, else the default queue
          description: Authenticated by an API key of purpose call_events (Authorization
            Bearer or X-Api-Key; no signature for a GET), every use audited. "Present" is
            employed, not on leave today, with an agent number and the status available. The
            team queue is the cti_queue of the department of the owner or the nearest one above it;
            pool customers and leads without a present owner go to CTI_DEFAULT_QUEUE, numbers
            nobody has to it with reason unknown_number. Refusals 400 naming caller,
            401 missing_key / unknown_key / revoked_key, 403 wrong_purpose, 429 rate_limited.
          security:
          - machine_key_bearer: []
          - machine_key_header: []
          parameters:
          - {in: query, name: caller, required: true, schema: {type: string, maxLength: 64},
             description: 'the calling number as the platform has it (+8613800138000,
             013800138000, 021-62345678, 62345678 with CTI_LOCAL_AREA_CODE)'}
          answer: CtiRoute
          errors: [400, 401, 403, 429]
        """
        unknown = sorted(set(request.args) - {"caller"})
        if unknown:
            raise ValidationFailed({k: tr("Unknown parameter") for k in unknown})
        call_events_key()
        found = cti_routing.route(request.args.get("caller"))
        return self.response(200, **schemas.dump(cs.CtiRoute, found.to_dict()))


class CtiCallApi(DocumentedApi):
    resource_name = "cti"
    class_permission_name = RES_CTI_CALL
    openapi_spec_tag = "Call centre"
    openapi_spec_component_schemas = schemas.COMPONENTS + cs.COMPONENTS

    @expose("/calls", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_calls(self):
        """The call log.
        ---
        get:
          summary: 通话记录 — the calls the caller may read (customers and leads in its scope,
            calls it took or dialled; admins, staff and auditors all), newest first, keyset
            pages; numbers masked by the contact details rule
          parameters:
          - {in: query, name: cursor, schema: {type: string},
             description: the next_cursor of the previous page}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          - {in: query, name: customer_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          - {in: query, name: agent, schema: {type: integer, minimum: 1, maximum: 2147483647},
             description: the user id of the agent who took the call}
          - {in: query, name: start, schema: {type: string, format: date},
             description: 'first business day, YYYY-MM-DD'}
          - {in: query, name: end, schema: {type: string, format: date},
             description: 'last business day, YYYY-MM-DD (included)'}
          - {in: query, name: result, schema: {type: string, enum: [answered, missed, busy,
             no_answer, failed]}}
          - {in: query, name: direction, schema: {type: string, enum: [in, out]}}
          answer: CtiCallPage
          errors: [400, 401, 403]
        """
        args = cti_calls.parse_list_args(request.args)
        page = cti_calls.list_calls(current_user(), args)
        return self.response(200, **schemas.dump(cs.CtiCallPage, {
            "count": len(page.items), "next_cursor": page.next_cursor,
            "result": page.items}))

    @expose("/calls/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def get_call(self, pk: int):
        """One call.
        ---
        get:
          summary: 通话 — one call the caller may read (404 outside its scope)
          answer: CtiCall
          errors: [401, 403, 404]
        """
        actor = current_user()
        cti_calls.require_reader(actor)
        call = cti_calls.get_call(actor, pk)
        item = cti_calls.to_dict(call, cti_calls.number_shown(actor, call),
                                 cti_calls.recording_link(actor, call))
        return self.response(200, **schemas.dump(cs.CtiCall, item))
