"""/api/v1/targets/: list (scoped, keyset by id), get, post, put, delete, and the team's
attainment; every write through app.services.targets."""
from __future__ import annotations

from flask import request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.models import SalesTarget
from app.security import RES_TARGET, current_user
from app.services import targets
from app.services.errors import UNKNOWN_FIELD, ValidationFailed, tr
from app.services.ids import MAX_PK, parse_pk

LIST_ARGS = ("after", "page_size", "period_kind", "period_start", "user_id", "department_id")
PERIOD_ARGS = ("period_kind", "period_start")


def _answer(target: SalesTarget) -> dict:
    return schemas.dump(schemas.TargetResult, {"id": target.id,
                                               "result": targets.to_dict(target)})


def _args(allowed: tuple[str, ...]) -> dict:
    """The query arguments, each checked (400 naming the field); ids and page_size as
    integers, the rest as text for the service."""
    errors: dict[str, str] = {k: str(UNKNOWN_FIELD)
                              for k in sorted(set(request.args) - set(allowed))}
    out: dict = {}
    for key in allowed:
        if key not in request.args:
            continue
        raw = request.args[key]
        if key in ("after", "user_id", "department_id"):
            out[key] = parse_pk(raw)
            if out[key] is None:
                errors[key] = tr("%(field)s must be an integer from 1 to %(max)s", field=key,
                                 max=MAX_PK)
        elif key == "page_size":
            if not raw.isdigit() or not 1 <= int(raw) <= targets.MAX_PAGE_SIZE:
                errors[key] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                 field=key, min=1, max=targets.MAX_PAGE_SIZE)
            else:
                out[key] = int(raw)
        else:
            out[key] = raw
    if errors:
        raise ValidationFailed(errors)
    return out


def _row(row: dict) -> dict:
    money = ("target_won", "actual_won", "parts_won")
    rates = ("rate_won", "rate_new")
    return {**row, **{k: None if row.get(k) is None else f"{row[k]:.2f}" for k in money},
            **{k: None if row.get(k) is None else float(row[k]) for k in rates}}


class TargetApi(DocumentedApi):
    resource_name = "targets"
    class_permission_name = RES_TARGET
    openapi_spec_tag = "Targets"

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_targets(self):
        """Sales targets the caller reads.
        ---
        get:
          summary: 业绩目标列表 — the caller's own (reps), his department tree's (managers),
            every target (admins, auditors); newest first, keyset pages by id, each with its
            attainment so far
          parameters:
          - {in: query, name: after, schema: {type: integer, minimum: 1, maximum: 2147483647},
             description: the next_after of the previous page}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          - {in: query, name: period_kind, schema: {type: string, enum: [month, quarter]}}
          - {in: query, name: period_start, schema: {type: string, maxLength: 20},
             description: '2026-10-01, 2026-10 or 2026-Q4'}
          - {in: query, name: user_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          - {in: query, name: department_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          answer: TargetPage
          errors: [400, 401, 403]
        """
        args = _args(LIST_ARGS)
        page = targets.list_targets(current_user(), page_size=args.pop("page_size",
                                                                       targets.PAGE_SIZE),
                                    **args)
        actuals = targets.actuals_of(page.items)
        return self.response(200, **schemas.dump(schemas.TargetPage, {
            "count": len(page.items), "next_after": page.next_after,
            "result": [targets.to_dict(t, actuals.get(t.id)) for t in page.items]}))

    @expose("/attainment", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def attainment(self):
        """The attainment of everyone the caller reads, for one period.
        ---
        get:
          summary: 达成率 — per user and per department the caller reads (a rep himself), the
            targets, the actuals and 达成率, and each department's warning when its parts'
            targets do not add up to its own
          parameters:
          - {in: query, name: period_kind, schema: {type: string, enum: [month, quarter]},
             description: default month}
          - {in: query, name: period_start, schema: {type: string, maxLength: 20},
             description: 'default: the period today is in'}
          answer: AttainmentReport
          errors: [400, 401, 403]
        """
        args = _args(PERIOD_ARGS)
        kind, start = targets.read_period(args.get("period_kind"), args.get("period_start"))
        report = targets.team_attainment(current_user(), kind, start)
        return self.response(200, **schemas.dump(schemas.AttainmentReport, {
            "period_kind": kind, "period_start": start.isoformat(),
            "period_end": report.end.isoformat(), "period_label": report.label,
            "users": [_row(r) for r in report.users],
            "departments": [_row(r) for r in report.departments]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def get_target(self, pk: int):
        """One sales target.
        ---
        get:
          summary: 业绩目标 — one target the caller reads, with its attainment so far
          answer: TargetResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(targets.get_target(current_user(), pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Set a sales target.
        ---
        post:
          summary: 设置业绩目标 — for one user or one department and one month or quarter;
            admins for anyone, managers for their department tree's users (not themselves)
            and the departments below their own; one per holder and period (target_exists)
          body: TargetCreate
          answer: TargetResult
          errors: [400, 401, 403, 404, 409]
        """
        return self.response(200, **_answer(targets.create_target(
            current_user(), load_body(schemas.TargetCreate))))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def change(self, pk: int):
        """Change a sales target's amounts.
        ---
        put:
          summary: 修改业绩目标 — the won amount and / or the new customers (holder and period
            stay)
          body: TargetUpdate
          answer: TargetResult
          errors: [400, 401, 403, 404]
        """
        targets.get_target(current_user(), pk, write=True)
        return self.response(200, **_answer(targets.update_target(
            current_user(), pk, load_body(schemas.TargetUpdate))))

    @expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def remove(self, pk: int):
        """Delete a sales target.
        ---
        delete:
          summary: 删除业绩目标
          answer: TargetDeleted
          errors: [401, 403, 404]
        """
        targets.delete_target(current_user(), pk)
        return self.response(200, **schemas.dump(schemas.TargetDeleted, {"id": pk}))
