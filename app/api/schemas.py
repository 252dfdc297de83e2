"""The API's request and response bodies, declared once as marshmallow schemas.

Each schema is registered on the OpenAPI spec through FAB (`openapi_spec_component_schemas`)
and named in the endpoints' YAML docstrings; an endpoint reads its body with `load(Schema)`
(the same class), so the spec and the code cannot drift apart: a field the code reads is a
field the spec declares, and an undeclared field is refused (400 naming it). Responses are
dumped through their schema, so an answer holds exactly the declared fields.

The fields reuse the one reading of ids (app.services.ids) and the one set of limits
(app.services.limits); the services still check everything again, for the forms and jobs.
"""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.models.policy import POLICY_FIELDS, SEGMENT_CONDITIONS
from app.models.transfer import TRANSFER_TRIGGERS
from app.services import limits
from app.services.errors import N_, UNKNOWN_FIELD, ValidationFailed, tr
from app.services.ids import CUSTOMER, LIST_REFUSALS, MAX_PK, REP, parse_ids, parse_pk
from app.services.pool import MAX_BATCH  # ids in one request
from app.services.tasks import RESOLVERS as TASK_RECORD_TYPES, SUBJECT as TASK_SUBJECT
from app.services.targets import MAX_COUNT as TARGET_MAX_COUNT
from app.models.target import PERIOD_KINDS as TARGET_PERIOD_KINDS
from app.services.times import rfc3339


# --- fields ---------------------------------------------------------------------------------
_MESSAGES = {"required": N_("Required"), "null": N_("Cannot be null")}  # msgids


class Said:
    """A field whose own messages are msgids, read in the caller's language when raised."""

    def make_error(self, key: str, **kwargs) -> ValidationError:
        error = super().make_error(key, **kwargs)
        return ValidationError(tr(error.messages[0])) if isinstance(error.messages, list) \
            and len(error.messages) == 1 and isinstance(error.messages[0], str) else error


class RecordId(Said, fields.Integer):
    default_error_messages = _MESSAGES
    """A record id: an integer 1..MAX_PK (read by ids.parse_pk: 1.5, true, "1e3" refused)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", validate.Range(min=1, max=MAX_PK))
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        number = parse_pk(value)
        if number is None:
            raise ValidationError(tr("%(field)s must be an integer from 1 to %(max)s",
                                     field=self.data_key or attr, max=MAX_PK))
        return number


class RecordIds(Said, fields.List):
    default_error_messages = _MESSAGES
    """A non-empty list of distinct record ids, at most `limit` (ids.parse_ids)."""

    def __init__(self, limit: int = MAX_BATCH, noun: str = CUSTOMER, **kwargs):
        self.limit, self.noun = limit, noun
        kwargs.setdefault("validate", validate.Length(min=1, max=limit))
        empty = LIST_REFUSALS[noun][1]
        kwargs.setdefault("error_messages", {"required": empty, "null": empty})
        super().__init__(RecordId(), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        key = self.data_key or attr
        try:
            return parse_ids(value, key, self.limit, self.noun)
        except ValidationFailed as exc:
            raise ValidationError(exc.fields[key]) from None


class Flag(Said, fields.Boolean):
    default_error_messages = _MESSAGES
    """true or false, nothing else (marshmallow's Boolean would take "yes", 1, "on")."""

    def __init__(self, message: str = "", **kwargs):
        self.message = message
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError(tr(self.message) if self.message else tr(
                "%(field)s must be true or false", field=self.data_key or attr))
        return value


class Count(Said, fields.Integer):
    default_error_messages = _MESSAGES
    """A whole number in minimum..maximum; bools and floats refused."""

    def __init__(self, minimum: int = 0, maximum: int = MAX_PK, **kwargs):
        self.minimum, self.maximum = minimum, maximum
        kwargs.setdefault("validate", validate.Range(min=minimum, max=maximum))
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int) \
                or not self.minimum <= value <= self.maximum:
            raise ValidationError(tr("%(field)s must be an integer from %(min)s to %(max)s",
                                     field=self.data_key or attr, min=self.minimum,
                                     max=self.maximum))
        return value


class Text(Said, fields.String):
    default_error_messages = _MESSAGES
    """A string of at most `limit` characters (app.services.limits)."""

    def __init__(self, limit: int, **kwargs):
        self.limit = limit
        kwargs.setdefault("validate", validate.Length(max=limit))
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        # A number is taken as its text (a phone sent as 13800138000), as the services do.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError(tr("Must be text"))
        value = value if isinstance(value, str) else str(value)
        if len(value) > self.limit:
            raise ValidationError(limits.too_long(value, self.limit))
        return value


class Choice(Said, fields.String):
    default_error_messages = _MESSAGES
    """One of `choices` (an OpenAPI enum)."""

    def __init__(self, choices, message, **kwargs):
        """`message`: the refusal's msgid, or a function that writes it."""
        self.choices, self.message = tuple(choices), message
        kwargs.setdefault("validate", validate.OneOf(self.choices))
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value not in self.choices:
            raise ValidationError(self.message() if callable(self.message) else tr(self.message))
        return value


class Timestamp(fields.DateTime):
    """RFC 3339 with the offset, in business time (app.services.times)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return rfc3339(value)


# --- loading --------------------------------------------------------------------------------
class Strict(Schema):
    """Exactly the declared fields (additionalProperties: false): a request body refuses any
    other, naming it; a response body holds no other."""

    class Meta:
        unknown = RAISE


Body = Answer = Strict  # the names say which way a schema goes


def load(schema: type[Schema], data: Any) -> dict:
    """`data` read by `schema`; ValidationFailed naming each bad field (one message each)."""
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("The request body must be a JSON object")})
    try:
        return schema().load(data)
    except ValidationError as exc:
        raise ValidationFailed(flatten_messages(exc.messages)) from None


def flatten_messages(messages: Any) -> dict[str, str]:
    """marshmallow's error messages (nested dicts and lists) as field -> one message."""
    out: dict[str, str] = {}
    for key, value in (messages.items() if isinstance(messages, dict) else [("body", messages)]):
        while isinstance(value, (list, dict)) and value:
            value = value[0] if isinstance(value, list) else next(iter(value.values()))
        text = str(value)
        out[str(key)] = str(UNKNOWN_FIELD) if text == "Unknown field." else text
    return out


def dump(schema: type[Schema], data: Any) -> dict:
    return schema().dump(data)


# --- errors ---------------------------------------------------------------------------------
class DedupeMatch(Answer):
    rule = fields.String(metadata={"description": "mobile | phone | email | scored (the "
                                                  "matcher); a lead's: company_name too"})
    action = fields.String(metadata={"description": "block | warn"})
    customer_id = fields.Integer()
    customer_name = fields.String()
    holder = fields.String(metadata={"description": "负责人 or the pool's name"})
    locked = fields.Boolean()
    score = fields.Float(allow_none=True, metadata={
        "description": "100 for an equal identifier; a scored match's probability (percent, "
                       "at most 99)"})
    total = fields.Float(allow_none=True, metadata={
        "description": "a scored match: the matcher's total (log2 weights)"})
    explanation = fields.String(allow_none=True, metadata={
        "description": "a scored match, field by field: 名称 相似 86%（+10.6）· 同城（+4.3）→ 14.9"})
    message = fields.String()
    # A lead's dedupe answer (app.services.leads): a customer or a lead, by id and name.
    record = fields.String(metadata={"description": "customer | lead"})
    id = fields.Integer()
    name = fields.String()


class Error(Strict):
    """Every 4xx and 5xx of the API: {code, message, fields?} plus the numbers of the rule
    that refused (cap, owned, adding, …) where there are some."""
    __component_name__ = "Error"

    code = fields.String(required=True, metadata={
        "description": "machine-readable: invalid, csrf, unauthorized, forbidden, not_found, "
                       "out_of_scope, cap_exceeded, lock_cap_exceeded, daily_limit, cooldown, "
                       "not_in_pool, duplicate, duplicate_warning, conflict, not_pending, "
                       "owner_changed, merged, method_not_allowed, too_large, server_error, "
                       "absent, absence_overlap; webhooks: missing_key, unknown_key, "
                       "revoked_key, wrong_purpose, rate_limited"})
    message = fields.String(required=True, metadata={
        "description": "为用户写的说明: in the session's language, else Chinese"})
    fields_ = fields.Dict(keys=fields.String(), values=fields.String(), data_key="fields",
                          metadata={"description": "field -> why it was refused (code "
                                                   "invalid)"})
    customer_ids = fields.List(fields.Integer(), metadata={
        "description": "the customers the refusal is about"})
    lead_ids = fields.List(fields.Integer(), metadata={
        "description": "the leads the refusal is about"})
    cap = fields.Integer()
    owned = fields.Integer()
    locked = fields.Integer()
    adding = fields.Integer()
    limit = fields.Integer()
    claimed_today = fields.Integer()
    cooldown_days = fields.Integer()
    held = fields.Integer()
    survivor_id = fields.Integer(metadata={"description": "merged: the surviving customer"})
    matches = fields.List(fields.Nested(DedupeMatch))
    msg = fields.String(metadata={"description": "kept from the JWT library's own answers"})


def error_response_spec(description: str) -> dict:
    from app.api.spec import json_answer, schema_ref

    return json_answer(description, schema_ref("Error"))


ERROR_RESPONSES = {
    "400": error_response_spec("Bad request: code invalid (fields names each bad field) or "
                               "csrf"),
    "401": error_response_spec("Not signed in, or the token expired"),
    "403": error_response_spec("The role may not do this"),
    "404": error_response_spec("No such record, or outside the data scope (the same answer)"),
    "409": error_response_spec("A rule refused: cap, lock cap, daily limit, cooldown, no "
                               "longer in the pool, duplicate, changed meanwhile"),
    "413": error_response_spec("The request body is too large (code too_large)"),
    "422": error_response_spec("Could not process the entity"),
    "429": error_response_spec("Too many requests with this API key (code rate_limited)"),
    "500": error_response_spec("Server error"),
}


# --- ownership ------------------------------------------------------------------------------
class ClaimRequest(Body):
    customer_ids = RecordIds(required=True)
    pool_id = RecordId(allow_none=True, metadata={"description": "only these pool customers"})


class ReleaseRequest(Body):
    customer_ids = RecordIds(required=True)
    reason = Text(limits.REASON, metadata={"description": "退回原因 (required by the rule)"})
    pool_id = RecordId(allow_none=True, metadata={"description": "default: the default pool"})


class AssignRequest(Body):
    customer_ids = RecordIds(required=True)
    owner_id = RecordId(required=True, error_messages={"required": N_("Select the owner"),
                                                       "null": N_("Select the owner")})
    reason = Text(limits.REASON, allow_none=True)


class DistributeRequest(Body):
    customer_ids = RecordIds(required=True)
    owner_ids = RecordIds(required=True, noun=REP)
    dry_run = Flag(load_default=True, metadata={"description": "preview unless false"})


class CustomerIdsRequest(Body):
    customer_ids = RecordIds(required=True)


class DepartureRequest(Body):
    user_id = RecordId(required=True, error_messages={"required": N_("Select the departing user"),
                                                      "null": N_("Select the departing user")})
    mode = Choice(("rep", "team", "rules", "pool"), required=True,
                  message=N_("The handover mode can only be rep, team, rules or pool"),
                  error_messages={"required": N_("Select the handover mode")})
    owner_id = RecordId(allow_none=True, metadata={"description": "mode rep: the receiver"})
    owner_ids = RecordIds(allow_none=True, noun=REP,
                          metadata={"description": "mode team: the receivers"})
    pool_id = RecordId(allow_none=True, metadata={"description": "mode pool / rules: the pool"})
    dry_run = Flag(load_default=True)


class ApplyRulesRequest(Body):
    customer_ids = RecordIds(required=True)
    dry_run = Flag(load_default=True)


class MovePoolRequest(Body):
    customer_ids = RecordIds(required=True)
    pool_id = RecordId(required=True, error_messages={"required": N_("Select the target pool"),
                                                      "null": N_("Select the target pool")})
    reason = Text(limits.REASON, allow_none=True)


class CustomerIds(Answer):
    customer_ids = fields.List(fields.Integer(), required=True)


class PlanLine(Answer):
    owner_id = fields.Integer(required=True)
    username = fields.String()
    owned_before = fields.Integer()
    cap = fields.Integer()
    count = fields.Integer(required=True)
    customer_ids = fields.List(fields.Integer(), required=True)


class Skipped(Answer):
    owner_id = fields.Integer(allow_none=True)
    username = fields.String()
    reason = fields.String(required=True)


class DistributionPlan(Answer):
    dry_run = fields.Boolean(required=True)
    assignments = fields.List(fields.Nested(PlanLine), required=True)
    skipped = fields.List(fields.Nested(Skipped), required=True)
    unassigned = fields.List(fields.Integer(), required=True)


class ToPool(Answer):
    pool_id = fields.Integer(required=True)
    pool = fields.String(required=True)
    count = fields.Integer(required=True)
    customer_ids = fields.List(fields.Integer(), required=True)


class LeadHandover(Answer):
    leads = fields.Integer(required=True, metadata={"description": "open leads held"})
    to_owner = fields.Integer(required=True, metadata={
        "description": "mode rep: to the receiver, within their lead cap"})
    to_pool = fields.Integer(required=True, metadata={"description": "back to their lead pools"})


class DeparturePlan(Answer):
    dry_run = fields.Boolean(required=True)
    user_id = fields.Integer(required=True)
    customers = fields.Integer(required=True, metadata={"description": "customers held"})
    assignments = fields.List(fields.Nested(PlanLine), required=True)
    to_pool = fields.Nested(ToPool, required=True)
    skipped = fields.List(fields.Nested(Skipped), required=True)
    leads = fields.Nested(LeadHandover, required=True)


class RulePlacement(Answer):
    customer_id = fields.Integer(required=True)
    rule = fields.String(allow_none=True, required=True)
    owner_id = fields.Integer(allow_none=True, required=True)
    pool_id = fields.Integer(allow_none=True, required=True)
    note = fields.String(allow_none=True)


class RulesPlan(Answer):
    dry_run = fields.Boolean(required=True)
    plan = fields.List(fields.Nested(RulePlacement), required=True)


# --- transfers ------------------------------------------------------------------------------
class TransferRequestBody(Body):
    customer_ids = RecordIds(required=True)
    to_owner_id = RecordId(required=True, error_messages={"required": N_("Select the receiver"),
                                                          "null": N_("Select the receiver")})
    reason = Text(limits.REASON, metadata={"description": "转移原因 (required)"})
    trigger = Choice(tuple(TRANSFER_TRIGGERS), load_default="other",
                     message=lambda: tr("The trigger can only be: %(choices)s",
                                        choices=tr(", ").join(TRANSFER_TRIGGERS)))
    handover_note = Text(limits.REASON, allow_none=True)
    keep_read_days = Count(0, 365, allow_none=True, metadata={
        "description": "days the previous owner keeps read access"})


class DecisionRequest(Body):
    note = Text(limits.REASON, allow_none=True, metadata={"description": "审批意见"})


class Transfer(Answer):
    id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={
        "description": "pending | first_approved | approved | rejected | cancelled | failed"})
    trigger = fields.String(required=True)
    reason = fields.String(allow_none=True)
    handover_note = fields.String(allow_none=True)
    customer_ids = fields.List(fields.Integer(), required=True)
    applicant_id = fields.Integer(allow_none=True)
    from_owner_id = fields.Integer(allow_none=True)
    to_owner_id = fields.Integer(allow_none=True)
    needs_second_approval = fields.Boolean(allow_none=True)
    first_approver_id = fields.Integer(allow_none=True)
    second_approver_id = fields.Integer(allow_none=True)
    keep_read_days = fields.Integer(allow_none=True)
    decision_note = fields.String(allow_none=True)
    created_at = Timestamp(allow_none=True)
    completed_at = Timestamp(allow_none=True)


class TransferResult(Answer):
    id = fields.Integer()
    result = fields.Nested(Transfer, required=True)


class TransferPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "total over every page"})
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    result = fields.List(fields.Nested(Transfer), required=True)


def page_query(max_page_size: int) -> dict:
    """The JSON schema of a list's `q` (rison): (page:0,page_size:50), documented."""
    return {"type": "object", "additionalProperties": False, "properties": {
        "page": {"type": "integer", "minimum": 0, "maximum": MAX_PK},
        "page_size": {"type": "integer", "minimum": 1, "maximum": max_page_size}}}


# What the list endpoints check of `q` before app.services.ids.check_paging reads the values
# (and names each bad one): an object of these two keys, no other.
PAGE_KEYS = {"type": "object", "additionalProperties": False,
             "properties": {"page": {}, "page_size": {}}}


# --- tasks ----------------------------------------------------------------------------------
_DUE_HELP = ("due time: business time (GUISHU_TIMEZONE) unless it names its offset, "
             "\"2026-12-01 15:00\" or RFC 3339; a date alone is due at 09:00 that day")


class TaskCreate(Body):
    subject = Text(TASK_SUBJECT, required=True, metadata={"description": "待办事项"})
    due_at = Text(40, required=True, metadata={"description": _DUE_HELP})
    notes = Text(limits.NOTE, allow_none=True)
    owner_id = RecordId(allow_none=True, metadata={
        "description": "负责人; default: the caller (others only within the caller's scope)"})
    record_type = Choice(tuple(TASK_RECORD_TYPES), allow_none=True, message=lambda: tr(
        "The record type can only be: %(choices)s", choices=tr(", ").join(TASK_RECORD_TYPES)),
        metadata={"description": "the kind of record the task is about (with record_id)"})
    record_id = RecordId(allow_none=True, metadata={"description": "the record's id"})


class TaskUpdate(Body):
    subject = Text(TASK_SUBJECT, metadata={"description": "待办事项"})
    due_at = Text(40, metadata={"description": _DUE_HELP})
    notes = Text(limits.NOTE, allow_none=True)
    owner_id = RecordId(allow_none=True, metadata={"description": "the new owner"})


class Task(Answer):
    id = fields.Integer(required=True)
    subject = fields.String(required=True)
    notes = fields.String(allow_none=True)
    due_at = fields.String(required=True, metadata={"description": "RFC 3339 with the offset"})
    owner_id = fields.Integer(required=True)
    created_by_id = fields.Integer(allow_none=True)
    record_type = fields.String(allow_none=True, metadata={
        "description": "customer | opportunity | ticket | lead"})
    record_id = fields.Integer(allow_none=True)
    record_name = fields.String(allow_none=True)
    source = fields.String(required=True, metadata={
        "description": "manual | followup | care | call"})
    status = fields.String(required=True, metadata={"description": "open | done | cancelled"})
    done_at = fields.String(allow_none=True)
    reminded_at = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)


class TaskResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Task, required=True)


class TaskPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "total over every page"})
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    result = fields.List(fields.Nested(Task), required=True)


def task_list_query(max_page_size: int) -> dict:
    """The JSON schema of the task list's `q` (rison): paging and two narrowing filters."""
    out = page_query(max_page_size)
    out["properties"].update({
        "status": {"type": "string", "enum": ["open", "done", "cancelled"]},
        "owner_id": {"type": "integer", "minimum": 1, "maximum": MAX_PK}})
    return out


TASK_LIST_KEYS = {"type": "object", "additionalProperties": False,
                  "properties": {"page": {}, "page_size": {}, "status": {}, "owner_id": {}}}


# --- policies -------------------------------------------------------------------------------
class PolicyNumber(Said, fields.Integer):
    """A policy number: null (inherit) or 0..maximum, refused with the service's words
    (app.services.policy_config / policies.validate_policy)."""
    default_error_messages = _MESSAGES

    def __init__(self, maximum: int, **kwargs):
        self.maximum = maximum
        kwargs.setdefault("validate", validate.Range(min=0, max=maximum))
        super().__init__(allow_none=True, strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        key = self.data_key or attr
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(tr("%(field)s must be an integer or null", field=key))
        if value < 0:
            raise ValidationError(tr("Cannot be negative"))
        if value > self.maximum:
            raise ValidationError(tr("Cannot be greater than %(max)s", max=self.maximum))
        return value


class PolicyTarget(RecordId):
    """department_id / user_id of a policy: null or an id."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(tr("%(field)s must be an integer or null",
                                     field=self.data_key or attr))
        return super()._deserialize(value, attr, data, **kwargs)


def _policy_fields(**scope_kwargs) -> dict[str, fields.Field]:
    out: dict[str, fields.Field] = {
        "scope": Choice(("global", "department", "user"),
                        message=N_("The scope can only be global, department or user"),
                        **scope_kwargs),
        "department_id": PolicyTarget(allow_none=True),
        "user_id": PolicyTarget(allow_none=True),
        # Segment conditions (issue 15): null = any; a segment policy sets only the reclaim
        # periods and warning days.
        "segment_record_type": Choice(("customer", "lead"), allow_none=True,
                                      message=N_("The record type can only be customer or "
                                                 "lead")),
        "segment_grade": Choice(("A", "B", "C"), allow_none=True,
                                message=N_("The grade can only be A, B or C")),
        "segment_category": Choice(("potential", "active", "silent"), allow_none=True,
                                   message=N_("The category can only be potential, active or "
                                              "silent")),
        "segment_product_line": Text(100, allow_none=True),
        "segment_source": Text(100, allow_none=True, metadata={
            "description": "a customer's source text or a lead's channel code (web_form, "
                           "phone, exhibition, referral, advertising, campaign, other)"}),
    }
    for name in POLICY_FIELDS:
        if name == "count_won":
            out[name] = Flag(allow_none=True, message=N_("count_won must be true, false or null"),
                             metadata={"description": "null inherits"})
        else:
            maximum = limits.maximum_of(name)
            out[name] = PolicyNumber(maximum, metadata={"description": "null inherits"})
    return out


PolicyCreate = Body.from_dict(_policy_fields(
    required=True,
    error_messages={"required": N_("The scope can only be global, department or user")}),
    name="PolicyCreate")
PolicyUpdate = Body.from_dict(_policy_fields(), name="PolicyUpdate")


Policy = Answer.from_dict({
    "id": fields.Integer(required=True), "scope": fields.String(required=True),
    "department_id": fields.Integer(allow_none=True), "user_id": fields.Integer(allow_none=True),
    **{name: fields.String(allow_none=True) for name in SEGMENT_CONDITIONS},
    **{name: fields.Boolean(allow_none=True) if name == "count_won"
       else fields.Integer(allow_none=True) for name in POLICY_FIELDS},
}, name="Policy")


class PolicyResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Policy, required=True)


class PolicyList(Answer):
    count = fields.Integer(required=True)
    result = fields.List(fields.Nested(Policy), required=True)


class PolicyDeleted(Answer):
    id = fields.Integer(required=True)


class SegmentValue(Answer):
    segment = fields.String(required=True, metadata={"description": "the conditions, in words"})
    value = fields.Integer(required=True)
    source = fields.String(required=True, metadata={
        "description": "user | department:<name> | global"})
    policy_id = fields.Integer(required=True)


class EffectiveValue(Answer):
    value = fields.Raw(allow_none=True, metadata={"description": "integer, or boolean for "
                                                                 "count_won"})
    source = fields.String(required=True, metadata={
        "description": "user | department:<name> | global | default"})
    segments = fields.List(fields.Nested(SegmentValue), metadata={
        "description": "reclaim periods and warning days only: the segment policies that "
                       "apply to the user's matching records before the plain value, first "
                       "match wins"})


class EffectivePolicy(Answer):
    user_id = fields.Integer(required=True)
    result = fields.Dict(keys=fields.String(), values=fields.Nested(EffectiveValue),
                         required=True)


# --- dedupe ---------------------------------------------------------------------------------
_CUSTOMER_TEXT = {"name": limits.NAME, "industry": 100, "province": 50, "city": 50,
                  "address": 300, "phone": 60, "mobile": 60, "email": 200, "source": 100,
                  "product_line": 100, "notes": limits.NOTE}
_CUSTOMER_HELP = {
    "name": "客户名称 (company or person name)", "customer_type": "company | person",
    "phone": "电话, any format", "mobile": "手机, a mobile number", "email": "邮箱",
    "birthday": "\"YYYY-MM-DD\" or \"MM-DD\"", "birthday_lunar": "true: a lunar birthday",
}


def _customer_fields() -> dict[str, fields.Field]:
    out: dict[str, fields.Field] = {
        name: Text(limit, allow_none=True,
                   metadata={"description": _CUSTOMER_HELP.get(name, "")})
        for name, limit in _CUSTOMER_TEXT.items()}
    out["customer_type"] = Choice(("company", "person"), allow_none=True,
                                  message=N_("The customer type can only be company or person"),
                                  metadata={"description": _CUSTOMER_HELP["customer_type"]})
    out["birthday"] = Text(20, allow_none=True,
                           metadata={"description": _CUSTOMER_HELP["birthday"]})
    out["birthday_lunar"] = Flag(allow_none=True,
                                 metadata={"description": _CUSTOMER_HELP["birthday_lunar"]})
    return out


DedupeCheckRequest = Body.from_dict(
    {**_customer_fields(), "exclude_id": RecordId(allow_none=True, metadata={
        "description": "the customer being edited"})}, name="DedupeCheckRequest")


class DedupeCheckResult(Answer):
    blocked = fields.Boolean(required=True)
    warned = fields.Boolean(required=True)
    matches = fields.List(fields.Nested(DedupeMatch), required=True)


# --- customers ------------------------------------------------------------------------------
CustomerPost = Body.from_dict({
    **_customer_fields(),
    "owner_id": RecordId(allow_none=True, metadata={"description": "default: the creator"}),
    "pool_id": RecordId(allow_none=True, metadata={"description": "create into this pool"}),
    "confirm_duplicates": Flag(metadata={"description": "save despite warning matches"}),
}, name="CustomerPost")
CustomerPut = Body.from_dict({
    **_customer_fields(),
    "confirm_duplicates": Flag(metadata={"description": "save despite warning matches"}),
}, name="CustomerPut")


class UserRef(Answer):
    id = fields.Integer(required=True)
    username = fields.String(allow_none=True)


class PoolRef(Answer):
    id = fields.Integer(required=True)
    name = fields.String(allow_none=True)


class Customer(Answer):
    """A customer as the API answers it: its columns and its ownership."""
    id = fields.Integer(required=True)
    name = fields.String(allow_none=True)
    customer_type = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    province = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    phone_e164 = fields.String(allow_none=True)
    mobile = fields.String(allow_none=True)
    mobile_e164 = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    email_norm = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    product_line = fields.String(allow_none=True)
    birth_year = fields.Integer(allow_none=True)
    birth_month = fields.Integer(allow_none=True)
    birth_day = fields.Integer(allow_none=True)
    birthday_lunar = fields.Boolean(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = Timestamp(allow_none=True)
    updated_at = Timestamp(allow_none=True)
    # Ownership (app.api.customers.ownership_fields): one owner or one pool.
    owner = fields.Nested(UserRef, allow_none=True, dump_only=True)
    pool = fields.Nested(PoolRef, allow_none=True, dump_only=True)
    locked = fields.Boolean(allow_none=True, dump_only=True)
    won = fields.Boolean(allow_none=True, dump_only=True)
    category = fields.String(allow_none=True, dump_only=True,
                             metadata={"description": "potential | active | silent"})
    grade = fields.String(allow_none=True, dump_only=True, metadata={"description": "A | B | C"})
    acquired_at = Timestamp(allow_none=True, dump_only=True)


class CustomerListItem(Customer):
    """A customer in a list (the same fields; FAB names the list's schema apart)."""


class CustomerShown(Customer):
    """A customer shown (the same fields; FAB names the show schema apart)."""


class CustomerResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Customer, required=True)


class CustomerDeleted(Answer):
    id = fields.Integer(required=True)
    message = fields.String(required=True)


class Merged(Answer):
    code = fields.String(required=True, metadata={"description": "merged"})
    message = fields.String(required=True)
    survivor_id = fields.Integer(required=True)


# --- leads ----------------------------------------------------------------------------------
def _lead_fields() -> dict:
    from app.models.lead import LEAD_SOURCES
    from app.services.leads import MAX_LENGTHS

    out = {name: Text(limit, allow_none=True) for name, limit in MAX_LENGTHS.items()}
    out["source"] = Choice(tuple(LEAD_SOURCES), allow_none=True, message=lambda: tr(
        "The source can only be: %(choices)s", choices=", ".join(LEAD_SOURCES)), metadata={
        "description": " | ".join(LEAD_SOURCES)})
    return out


LeadCreate = Body.from_dict({
    **_lead_fields(),
    "owner_id": RecordId(allow_none=True, metadata={"description": "the owner (else: reps and "
                                                                   "managers themselves, "
                                                                   "staff and admins a pool)"}),
    "pool_id": RecordId(allow_none=True, metadata={"description": "a lead pool"}),
    "confirm_duplicates": Flag(metadata={"description": "save despite warning matches"}),
}, name="LeadCreate")
LeadUpdate = Body.from_dict({
    **_lead_fields(),
    "confirm_duplicates": Flag(metadata={"description": "save despite warning matches"}),
}, name="LeadUpdate")


class Lead(Answer):
    """A lead with its holder; contact details masked as the caller may see them."""
    id = fields.Integer(required=True)
    person_name = fields.String(allow_none=True)
    company_name = fields.String(allow_none=True)
    mobile = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    province = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    campaign = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"description": "new | working | "
                                                                   "converted | invalid"})
    invalid_reason = fields.String(allow_none=True)
    owner = fields.Nested(UserRef, allow_none=True)
    pool = fields.Nested(PoolRef, allow_none=True)
    last_followup_at = Timestamp(allow_none=True)
    converted_customer_id = fields.Integer(allow_none=True)
    converted_at = Timestamp(allow_none=True)
    created_at = Timestamp(allow_none=True)
    updated_at = Timestamp(allow_none=True)
    priority_score = fields.Integer(required=True, metadata={
        "description": "the priority score: the sum of priority_parts"})
    priority_parts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                                 metadata={"description": "points by rule: source, "
                                                          "completeness, engagement, age"})


class LeadResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Lead, required=True)


class LeadPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "pass as after for the next page (null: the last page)"})
    result = fields.List(fields.Nested(Lead), required=True)


class LeadClaimRequest(Body):
    lead_ids = RecordIds(noun="lead", required=True)
    pool_id = RecordId(allow_none=True, metadata={"description": "only from this lead pool"})


class LeadReleaseRequest(Body):
    lead_ids = RecordIds(noun="lead", required=True)
    reason = Text(limits.REASON, required=True)
    pool_id = RecordId(allow_none=True, metadata={"description": "else the pool each came "
                                                                 "from, else the default"})


class LeadConvertOpportunity(Body):
    title = Text(200, required=True)
    amount = Text(40, required=True, metadata={"description": "a decimal, e.g. \"12800.00\""})


class LeadConvertRequest(Body):
    lead_id = RecordId(required=True)
    into_pool = Flag(metadata={"description": "create the customer in a customer pool"})
    pool_id = RecordId(allow_none=True, metadata={"description": "that customer pool"})
    confirm_duplicates = Flag(metadata={"description": "create despite warning matches"})
    opportunity = fields.Nested(LeadConvertOpportunity, allow_none=True, metadata={
        "description": "optional: an open opportunity on the customer it becomes"})


class LeadIds(Answer):
    lead_ids = fields.List(fields.Integer(), required=True)


class LeadConverted(Answer):
    lead_id = fields.Integer(required=True)
    customer_id = fields.Integer(required=True)
    outcome = fields.String(required=True, metadata={
        "description": "created | created_in_pool | claimed | linked | linked_other"})
    holder = fields.String(allow_none=True)
    opportunity_id = fields.Integer(allow_none=True, metadata={
        "description": "the opportunity created with the conversion"})
    opportunity_note = fields.String(allow_none=True, metadata={
        "description": "why the asked-for opportunity was not created (the customer is in a "
                       "pool or another rep's); the conversion stands"})


# --- sales targets --------------------------------------------------------------------------
_PERIOD_HELP = ("the period's first day: 2026-10-01, or 2026-10 (a month), 2026-Q4 (a "
                "quarter); a month starts on its 1st, a quarter on 1 Jan / Apr / Jul / Oct")


def _target_measures() -> dict:
    return {
        "won_amount": Text(40, allow_none=True, metadata={
            "description": "目标成交金额 (yuan, 0 to 999999999999.99; a number or its text)"}),
        "new_customers": Count(0, TARGET_MAX_COUNT, allow_none=True, metadata={
            "description": "目标新增客户数"}),
    }


TargetCreate = Body.from_dict({
    "user_id": RecordId(allow_none=True, metadata={"description": "the user (or department_id)"}),
    "department_id": RecordId(allow_none=True, metadata={
        "description": "the department (or user_id)"}),
    "period_kind": Choice(tuple(TARGET_PERIOD_KINDS), required=True, message=lambda: tr(
        "The period can only be: %(choices)s", choices=tr(", ").join(TARGET_PERIOD_KINDS)),
        metadata={"description": "month | quarter"}),
    "period_start": Text(20, required=True, metadata={"description": _PERIOD_HELP}),
    **_target_measures(),
}, name="TargetCreate")
TargetUpdate = Body.from_dict(_target_measures(), name="TargetUpdate")


class TargetAttainment(Answer):
    """The actuals so far and 达成率 (actual / target; null without a positive target)."""
    won_amount = fields.String(required=True, metadata={"description": "成交金额 in the period"})
    new_customers = fields.Integer(required=True, metadata={
        "description": "customers acquired in the period (created, claimed, assigned)"})
    won_amount_rate = fields.Float(allow_none=True, metadata={"description": "1.0 = 100 %"})
    new_customers_rate = fields.Float(allow_none=True)
    warnings = fields.List(fields.String(), required=True, metadata={
        "description": "a department whose parts' targets do not add up to its own"})


class Target(Answer):
    id = fields.Integer(required=True)
    user_id = fields.Integer(allow_none=True)
    department_id = fields.Integer(allow_none=True)
    holder_name = fields.String(required=True)
    period_kind = fields.String(required=True, metadata={"description": "month | quarter"})
    period_start = fields.String(required=True, metadata={"description": "YYYY-MM-DD"})
    period_end = fields.String(required=True, metadata={
        "description": "the first day after the period"})
    period_label = fields.String(required=True, metadata={"description": "2026-10, 2026 Q4"})
    won_amount = fields.String(allow_none=True)
    new_customers = fields.Integer(allow_none=True)
    set_by_id = fields.Integer(allow_none=True)
    created_at = fields.String(allow_none=True, metadata={"description": "RFC 3339"})
    updated_at = fields.String(allow_none=True, metadata={"description": "RFC 3339"})
    attainment = fields.Nested(TargetAttainment, required=True)


class TargetResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Target, required=True)


class TargetPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "pass as after for the next page (null: the last page)"})
    result = fields.List(fields.Nested(Target), required=True)


class TargetDeleted(Answer):
    id = fields.Integer(required=True)


class AttainmentRow(Answer):
    holder = fields.String(required=True, metadata={"description": "user | department"})
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    username = fields.String(allow_none=True)
    department_id = fields.Integer(allow_none=True, metadata={"description": "a user's"})
    parent_id = fields.Integer(allow_none=True, metadata={"description": "a department's"})
    target_won = fields.String(allow_none=True)
    target_new = fields.Integer(allow_none=True)
    actual_won = fields.String(required=True)
    actual_new = fields.Integer(required=True)
    rate_won = fields.Float(allow_none=True)
    rate_new = fields.Float(allow_none=True)
    parts_won = fields.String(allow_none=True, metadata={
        "description": "a department's members' and sub-departments' targets, summed"})
    parts_new = fields.Integer(allow_none=True)
    warnings = fields.List(fields.String(), required=True)


class AttainmentReport(Answer):
    period_kind = fields.String(required=True)
    period_start = fields.String(required=True)
    period_end = fields.String(required=True)
    period_label = fields.String(required=True)
    users = fields.List(fields.Nested(AttainmentRow), required=True)
    departments = fields.List(fields.Nested(AttainmentRow), required=True)


# --- opportunities --------------------------------------------------------------------------
_AMOUNT_HELP = "a decimal of at most 12 digits and 2 decimals, e.g. \"12800.00\" (or a number)"


class OpportunityCreate(Body):
    customer_id = RecordId(required=True, metadata={
        "description": "an owned customer the caller may write (not a pool customer)"})
    title = Text(200, required=True)
    amount = Text(40, required=True, metadata={"description": _AMOUNT_HELP})
    expected_close_on = Text(20, allow_none=True, metadata={"description": "YYYY-MM-DD"})
    product_line = Text(100, allow_none=True)
    stage_id = RecordId(allow_none=True, metadata={
        "description": "an open stage; default: the first"})


class OpportunityUpdate(Body):
    title = Text(200)
    amount = Text(40, metadata={"description": _AMOUNT_HELP})
    expected_close_on = Text(20, allow_none=True, metadata={"description": "YYYY-MM-DD"})
    product_line = Text(100, allow_none=True)


class OpportunityStageRequest(Body):
    stage_id = RecordId(required=True, metadata={"description": "the stage to move to"})
    loss_reason = Text(500, allow_none=True, metadata={
        "description": "required when stage_id is the lost stage (输单)"})
    won_on = Text(20, allow_none=True, metadata={
        "description": "the won stage: the deal's date, YYYY-MM-DD (default today)"})
    expected_stage_id = RecordId(allow_none=True, metadata={
        "description": "refuse (409) if the opportunity is no longer at this stage"})


class Opportunity(Answer):
    """An opportunity: its owner is its customer's owner while open (null while the customer
    is in a pool), the owner at closing once won or lost."""
    id = fields.Integer(required=True)
    customer_id = fields.Integer(required=True)
    customer_name = fields.String(allow_none=True)
    title = fields.String(required=True)
    amount = fields.String(required=True, metadata={"description": "decimal as text"})
    weighted_amount = fields.String(required=True, metadata={
        "description": "amount × the stage's probability"})
    expected_close_on = fields.String(allow_none=True)
    product_line = fields.String(allow_none=True)
    stage_id = fields.Integer(required=True)
    stage = fields.String(allow_none=True)
    probability = fields.Integer(allow_none=True)
    status = fields.String(required=True, metadata={"description": "open | won | lost"})
    loss_reason = fields.String(allow_none=True)
    owner = fields.Nested(UserRef, allow_none=True)
    deal_id = fields.Integer(allow_none=True)
    closed_at = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class OpportunityResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Opportunity, required=True)


class OpportunityPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "pass as after for the next page (null: the last page)"})
    result = fields.List(fields.Nested(Opportunity), required=True)


# --- webhooks (API keys) ----------------------------------------------------------------------
class SmsReply(Body):
    from_ = Text(40, required=True, data_key="from", metadata={
        "description": "the sender's number as the gateway writes it (normalised to E.164)"})
    text = Text(1000, required=True, metadata={"description": "the reply, 1–1000 characters"})
    received_at = Text(40, allow_none=True, metadata={
        "description": "RFC 3339 time the gateway received it (optional)"})


class SmsReplyResult(Answer):
    matched = fields.Boolean(required=True)
    customer_id = fields.Integer(metadata={"description": "the customer matched (matched)"})
    opted_out = fields.Boolean(metadata={
        "description": "true when the reply was TD / 退订: the number is on the opt-out list"})


COMPONENTS = (Error, DedupeMatch, ClaimRequest, ReleaseRequest, AssignRequest,
              DistributeRequest, CustomerIdsRequest, DepartureRequest, ApplyRulesRequest,
              MovePoolRequest, CustomerIds, DistributionPlan, DeparturePlan, RulesPlan,
              TransferRequestBody, DecisionRequest, Transfer, TransferResult, TransferPage,
              PolicyCreate, PolicyUpdate, Policy, PolicyResult, PolicyList, PolicyDeleted,
              EffectivePolicy, DedupeCheckRequest, DedupeCheckResult,
              CustomerResult, CustomerDeleted, Merged, TaskCreate, TaskUpdate, Task,
              TaskResult, TaskPage, LeadCreate, LeadUpdate, Lead, LeadResult, LeadPage,
              LeadClaimRequest, LeadReleaseRequest, LeadConvertRequest, LeadConvertOpportunity,
              LeadIds, LeadConverted,
              OpportunityCreate, OpportunityUpdate, OpportunityStageRequest, Opportunity,
              OpportunityResult, OpportunityPage, SmsReply, SmsReplyResult, TargetCreate,
              TargetUpdate, TargetAttainment, Target, TargetResult, TargetPage, TargetDeleted,
              AttainmentRow, AttainmentReport)
