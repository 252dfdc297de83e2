"""Call events in (/api/v1/cti/events, /api/v1/cti/vendors/<vendor>): a telephony platform
pushes what happened to its calls. Authenticated by an API key of purpose call_events and a
signature (ours, or the vendor's own scheme), never by a session or a JWT.

CSRF: exempt like the webhooks (app.api.hooks), and safe for the same reason: nothing here
reads the session cookie; a request without the key and its signature is refused 401.
"""
from __future__ import annotations

import base64
import binascii
import json

from flask import request
from flask_appbuilder.api import expose

from app.api import cti_schemas as cs
from app.api import schemas
from app.api.common import DocumentedApi, maps_domain_errors
from app.api.hooks import body_within, key_for
from app.services import api_keys, cti_events
from app.services.cti_vendors import tencent, tinet
from app.services.errors import ValidationFailed, tr

SIGNED = [{"machine_key_bearer": [], "guishu_signature": [], "guishu_timestamp": []},
          {"machine_key_header": [], "guishu_signature": [], "guishu_timestamp": []}]


def _body_text() -> str:
    """The raw body as text: ValidationFailed for bytes that are not UTF-8."""
    try:
        return request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed({"body": tr("The request body must be UTF-8 JSON")}) from None


def _json(text: str):
    try:
        data = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("The request body must be a JSON object")})
    return data


def _basic_password() -> str | None:
    """The password of `Authorization: Basic …` (TCCC's basicAuth), or None."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded.partition(":")[2] or None


class CtiEventsApi(DocumentedApi):
    resource_name = "cti"
    openapi_spec_tag = "Call centre"
    allow_browser_login = False
    openapi_spec_component_schemas = schemas.COMPONENTS + cs.COMPONENTS

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        api_spec.components.security_scheme("guishu_signature", {
            "type": "apiKey", "in": "header", "name": "X-Guishu-Signature",
            "description": "sha256=<hex HMAC-SHA256 of \"<X-Guishu-Timestamp>.\" + the raw "
                           "body, keyed with the API key's signing secret>"})
        api_spec.components.security_scheme("guishu_timestamp", {
            "type": "apiKey", "in": "header", "name": "X-Guishu-Timestamp",
            "description": "unix seconds; more than 300 s from now is refused "
                           "(stale_signature)"})
        api_spec.components.security_scheme("tccc_basic", {
            "type": "http", "scheme": "basic",
            "description": "TCCC's basicAuth: any user name, the API key (purpose "
                           "call_events) as the password"})

    @expose("/events", methods=["POST"])
    @maps_domain_errors
    def events(self):
        """A vendor-neutral call event, signed.
        ---
        post:
          summary: 通话事件 — ringing, answered, hangup, cdr, recording_ready or agent_status
          description: Authenticated by an API key of purpose call_events (never by a session
            or JWT) and signed, X-Guishu-Signature sha256=<hex HMAC-SHA256(signing secret,
            "<X-Guishu-Timestamp>." + raw body)>. The same (vendor, event_id) twice changes
            nothing (200, duplicate true). Refusals 401 missing_key / unknown_key /
            revoked_key / bad_signature / stale_signature (timestamp more than 300 s away),
            403 wrong_purpose, 429 rate_limited, 413 too_large (over 64 KiB), 400 naming
            the field.
          security:
          - machine_key_bearer: []
            guishu_signature: []
            guishu_timestamp: []
          - machine_key_header: []
            guishu_signature: []
            guishu_timestamp: []
          body: CtiEvent
          answer: CtiEventResult
          errors: [400, 401, 403, 413, 429]
        """
        body_within(cti_events.BODY_MAX)
        key = key_for("call_events")
        api_keys.verify_signature(key, request.headers.get("X-Guishu-Timestamp"),
                                  request.headers.get("X-Guishu-Signature"),
                                  request.get_data(cache=True), endpoint=request.path)
        text = _body_text()
        result = cti_events.ingest(_json(text), None, text, api_key_id=key.id)
        return self.response(200, **schemas.dump(cs.CtiEventResult, result.as_dict()))

    @expose("/vendors/tinet", methods=["POST"])
    @maps_domain_errors
    def tinet(self):
        """天润融通 (Tinet) CDR push.
        ---
        post:
          summary: 天润融通话单推送 — one finished call (epoch seconds, numeric status)
          description: Tinet's CDR push, mapped to a cdr event. Authenticated by an API key of
            purpose call_events (Authorization Bearer or X-Api-Key) and Tinet's own sign,
            enterpriseId, timestamp and sign = md5(enterpriseId + timestamp + the key's
            signing secret) in the query string or the body; a timestamp more than 300 s away
            is refused (stale_signature). A pushed CDR again changes nothing (duplicate true).
            400 names Tinet's field.
          parameters:
          - {in: query, name: enterpriseId, schema: {type: string, maxLength: 40}}
          - {in: query, name: timestamp, schema: {type: integer, minimum: 0}}
          - {in: query, name: sign, schema: {type: string, maxLength: 64}}
          security:
          - machine_key_bearer: []
          - machine_key_header: []
          body: TinetCdr
          answer: CtiEventResult
          errors: [400, 401, 403, 413, 429]
        """
        body_within(cti_events.BODY_MAX)
        key = key_for("call_events")
        text = _body_text()
        payload = _json(text)

        def given(name):
            value = request.args.get(name)
            return value if value is not None else payload.get(name)

        enterprise, stamp, sign = given("enterpriseId"), given("timestamp"), given("sign")
        if not isinstance(enterprise, (str, int)) or not sign or not isinstance(sign, str):
            raise api_keys.refuse_signature(key, "bad_signature", tr(
                "Tinet's enterpriseId, timestamp and sign are required"), request.path)
        stamp = api_keys.check_timestamp(key, stamp, request.path)
        expected = tinet.sign(str(enterprise), stamp, api_keys.signing_secret(key))
        if not api_keys.same_signature(expected, sign.lower()):
            raise api_keys.refuse_signature(key, "bad_signature", tr(
                "The request's signature does not match"), request.path)
        results = [cti_events.ingest(event, tinet.VENDOR, text, api_key_id=key.id)
                   for event in tinet.events(payload)]
        return self.response(200, **schemas.dump(cs.CtiEventResult, results[-1].as_dict()))

    @expose("/vendors/tencent", methods=["POST"])
    @maps_domain_errors
    def tencent(self):
        """腾讯云联络中心 (TCCC) data push.
        ---
        post:
          summary: 腾讯云联络中心数据推送 — ?action=cdr (the call's record) or ?action=record
            (a recording)
          description: TCCC's push, mapped to a cdr or recording_ready event. Authenticated
            by TCCC's basicAuth, the password being an API key of purpose call_events. The
            X-TCCC-PUSH-UUID header is the event id (a retried push changes nothing). Answers
            ErrCode 0 when taken. 400 names TCCC's field.
          parameters:
          - in: query
            name: action
            required: true
            schema: {type: string, enum: [cdr, record]}
          - {in: query, name: version, schema: {type: string, maxLength: 10}}
          - {in: header, name: X-TCCC-PUSH-UUID, schema: {type: string, maxLength: 100}}
          security:
          - tccc_basic: []
          body: TencentPush
          answer: TencentPushResult
          errors: [400, 401, 403, 413, 429]
        """
        body_within(cti_events.BODY_MAX)
        key = api_keys.authenticate(_basic_password(), "call_events", endpoint=request.path)
        text = _body_text()
        events = tencent.events(request.args.get("action"), _json(text),
                                request.headers.get("X-TCCC-PUSH-UUID"))
        results = [cti_events.ingest(event, tencent.VENDOR, text, api_key_id=key.id)
                   for event in events]
        answer = dict(results[-1].as_dict(), ErrCode=0, ErrMsg="ok")
        return self.response(200, **schemas.dump(cs.TencentPushResult, answer))
