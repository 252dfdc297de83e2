"""天润融通 (Tinet / Clink) CDR push → one neutral `cdr` event.

The push (a JSON object, after the call has ended) carries Tinet's CDR fields: uniqueId (the
call), callType (1 呼入, 2 网上400呼入: inbound; 3 点击外呼, 4 预览外呼, 5 预测外呼, 6 主叫外呼,
...: outbound), customerNumber (the customer's number), hotline (the company's number), cno
(座席工号), qno (队列号), startTime / answerTime / bridgeTime / endTime (unix seconds, 0 when
it did not happen), bridgeDuration (talk seconds), totalDuration, status (接听状态, numeric, see
RESULTS), recordFile (the recording; taken when it is an address), requestUniqueId (the
reference a click-to-call request gave, carried back: our crm_ref).

Authentication, Tinet's own: enterpriseId, timestamp (unix seconds) and sign =
md5(enterpriseId + timestamp + token) in the query string (or the body), 32 lower-case hex;
the token is the signing secret of the API key of purpose call_events, which the request also
carries (Authorization: Bearer / X-Api-Key) so that Guishu knows which secret to check.
"""
from __future__ import annotations

import hashlib
from typing import Any

from app.services import cti_vendors as v

VENDOR = "tinet"
INBOUND_TYPES = (1, 2)
# status → result. Inbound: 1 座席接听; 2 已呼叫座席,座席未接听 and 12 客户在系统应答前挂机 are
# missed calls; 3 系统接听 (the IVR answered, no agent) and 4-11, 13 (系统未接: configuration,
# suspended, arrears, blacklist, ...) failed. Outbound: 33 双方接听, 22/24 webcall 接听, 41/43
# 预测外呼接听, 50 主叫外呼接听 answered; 21, 23, 32, 40, 42, 51 客户未接听 no answer; 20, 30, 31
# (the agent side never reached the customer) failed.
RESULTS = {1: "answered", 2: "missed", 12: "missed",
           **{code: "failed" for code in (3, 4, 5, 6, 7, 8, 9, 10, 11, 13)},
           33: "answered", 22: "answered", 24: "answered", 41: "answered", 43: "answered",
           50: "answered",
           **{code: "no_answer" for code in (21, 23, 32, 40, 42, 51)},
           20: "failed", 30: "failed", 31: "failed"}


def sign(enterprise_id: str, timestamp: str, token: str) -> str:
    return hashlib.md5(f"{enterprise_id}{timestamp}{token}".encode("utf-8")).hexdigest()


def events(payload: Any) -> list[dict[str, Any]]:
    """The neutral events of one CDR push (ValidationFailed naming Tinet's fields)."""
    if not isinstance(payload, dict):
        v.check({"body": v.tr("The request body must be a JSON object")})
    errors: dict[str, str] = {}
    unique_id = v.text(payload, "uniqueId", errors, 128, required=True)
    call_type = v.integer(payload, "callType", errors, required=True)
    status = v.integer(payload, "status", errors, required=True)
    times = {f: v.epoch(v.integer(payload, f, errors))
             for f in ("startTime", "answerTime", "bridgeTime", "endTime")}
    if times["startTime"] is None and "startTime" not in errors:
        errors["startTime"] = v.tr("Required")
    talk = v.integer(payload, "bridgeDuration", errors)
    customer = v.text(payload, "customerNumber", errors, 64)
    hotline = v.text(payload, "hotline", errors, 64)
    cno = v.text(payload, "cno", errors, 32)
    qno = v.text(payload, "qno", errors, 64)
    record = v.text(payload, "recordFile", errors, 1000)
    ref = v.text(payload, "requestUniqueId", errors, 40)
    v.check(errors)
    inbound = call_type in INBOUND_TYPES
    answered = times["bridgeTime"] or (times["answerTime"] if not inbound else None)
    result = RESULTS.get(status, "failed")
    event = {
        "event_id": f"cdr:{unique_id}", "call_id": unique_id, "type": "cdr",
        "direction": "in" if inbound else "out",
        "occurred_at": times["endTime"] or times["startTime"],
        "started_at": times["startTime"],
        "caller": customer if inbound else hotline,
        "callee": hotline if inbound else customer,
        "agent_no": cno, "queue": qno, "result": result,
        "answered_at": answered if result == "answered" else None,
        "ended_at": times["endTime"],
        "talk_seconds": talk if result == "answered" else 0,
        "recording_url": record if v.is_url(record) else None,
        "crm_ref": ref,
    }
    return [{k: val for k, val in event.items() if val is not None}]
