"""Webhooks for machines (/api/v1/hooks/…), authenticated by an API key of the endpoint's
purpose (app.services.api_keys), never by a session or a JWT.

CSRF: these endpoints are exempt from CSRFProtect and from the session CSRF check of
app.api.csrf, and that is safe only because nothing here reads the session cookie: a request
authenticates by its key (`Authorization: Bearer <key>` or `X-Api-Key`) or is refused 401, so
a browser's cookie, which a cross-site page can make it send, carries no authority here.
"""
from __future__ import annotations

from flask import request
from flask_appbuilder.api import expose

from app.api import schemas
from app.api.common import DocumentedApi, json_body, maps_domain_errors
from app.services import api_keys, sms_inbound
from app.services.errors import GuishuError, tr

SECURITY = [{"machine_key_bearer": []}, {"machine_key_header": []}]


def key_for(purpose: str):
    """The request's API key of `purpose` (a refusal raises: 401 / 403 / 429, audited)."""
    return api_keys.authenticate(api_keys.key_from_headers(request.headers), purpose,
                                 endpoint=request.path)


def body_within(limit: int) -> None:
    """413 before anything else when the body is larger than `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        refusal = GuishuError(tr("The request body is too large"), code="too_large")
        refusal.status = 413
        raise refusal


class HooksApi(DocumentedApi):
    resource_name = "hooks"
    openapi_spec_tag = "Webhooks"
    allow_browser_login = False

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        api_spec.components.security_scheme("machine_key_bearer", {
            "type": "http", "scheme": "bearer", "bearerFormat": "Guishu API key",
            "description": "An API key an admin created for this endpoint's purpose "
                           "(gsk_…), as Authorization: Bearer <key>"})
        api_spec.components.security_scheme("machine_key_header", {
            "type": "apiKey", "in": "header", "name": "X-Api-Key",
            "description": "The same API key in the X-Api-Key header"})

    @expose("/sms-reply", methods=["POST"])
    @maps_domain_errors
    def sms_reply(self):
        """A customer's SMS reply, from the SMS gateway (API key purpose sms_inbound).
        ---
        post:
          summary: 短信回复 — match the sender to a customer and notify its owner
          description: Authenticated by an API key of purpose sms_inbound (never by a session
            or JWT). The sender is matched by its normalised number (E.164) against customers'
            and contacts' mobiles and phones. 200 when matched (the owner is notified; a pool
            customer's reply is only audited), 202 when no customer has that number. Refusals
            401 missing_key / unknown_key / revoked_key, 403 wrong_purpose, 429 rate_limited,
            413 too_large (over 16 KiB), 400 naming the field.
          security:
          - machine_key_bearer: []
          - machine_key_header: []
          body: SmsReply
          answer: SmsReplyResult
          responses:
            202:
              description: No customer has that number
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SmsReplyResult'
          errors: [400, 401, 403, 413, 429]
        """
        return _sms_reply(self)


def _sms_reply(api):
    """One handler for both addresses of the SMS gateway's webhook."""
    body_within(sms_inbound.BODY_MAX)
    key = key_for("sms_inbound")
    data = schemas.load(schemas.SmsReply, json_body())
    data["from"] = data.pop("from_")
    result = sms_inbound.receive_reply(key, data)
    return api.response(200 if result["matched"] or result.get("opted_out") else 202,
                        **schemas.dump(schemas.SmsReplyResult, result))


class SmsApi(DocumentedApi):
    """/api/v1/sms/inbound, the address issue 16 names for the gateway's replies (the same
    handler as /api/v1/hooks/sms-reply, which existing gateway setups keep using). Its
    security schemes are the ones HooksApi declares (declared once per spec)."""

    resource_name = "sms"
    openapi_spec_tag = "Webhooks"
    allow_browser_login = False

    @expose("/inbound", methods=["POST"])
    @maps_domain_errors
    def inbound(self):
        """An inbound SMS from the gateway (API key purpose sms_inbound): TD replies opt out.
        ---
        post:
          summary: 短信上行 — TD / 退订 opts the number out; other replies notify the owner
          description: Authenticated by an API key of purpose sms_inbound (never by a session
            or JWT). A text of TD, td or 退订 (trimmed, full-width letters too) puts the sender's
            number (E.164) on the marketing opt-out list (source sms_reply) and answers 200 with
            opted_out true. Any other text is matched to a customer by its normalised number
            (200, the owner is notified; a pool customer's reply only audited) or answers 202.
            Refusals 401 missing_key / unknown_key / revoked_key, 403 wrong_purpose,
            429 rate_limited, 413 too_large (over 16 KiB), 400 naming the field.
          security:
          - machine_key_bearer: []
          - machine_key_header: []
          body: SmsReply
          answer: SmsReplyResult
          responses:
            202:
              description: Not an opt-out and no customer has that number
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SmsReplyResult'
          errors: [400, 401, 403, 413, 429]
        """
        return _sms_reply(self)
