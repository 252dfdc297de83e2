"""Ownership forms behind the list actions: release (放弃) with a reason, assign / even
distribution (分配) and the assignment rules with a preview before the commit, moving pool
customers between pools, and the departure handover (离职交接).

Each page shows the selected customers (only those in the actor's scope: one id outside it is
a 404, as for FAB's own routes), calls one service, and reports the service's refusal as is.
"""
from __future__ import annotations

from typing import Optional

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _, ngettext
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, Ownership, Pool, User
from app.security import RES_OWNERSHIP, visible_customer_ids_select
from app.services import (assignment, classification, departure, org, pool as pool_service,
                          pool_admin, rules)
from app.services.customers import assignable_owner_ids
from app.services.errors import GuishuError, ValidationFailed
from app.services.ids import parse_pk
from app.views.base import signed_in_user

MAX_SELECTED = pool_service.MAX_BATCH


def selected_ids() -> list[int]:
    """The `ids` argument (comma separated, from a list action) as ids; 404 on junk."""
    raw = [parse_pk(x.strip()) for x in request.values.get("ids", "").split(",") if x.strip()]
    ids = list(dict.fromkeys(raw))
    if not ids or None in ids or len(ids) > MAX_SELECTED:
        abort(404)
    return ids


def ids_arg(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)


def owned_customers(actor: User, ids: list[int]) -> list[Customer]:
    """The selected customers if every one is owned within the actor's scope, else 404."""
    q = select(Customer).join(Ownership).where(Customer.id.in_(ids),
                                               Ownership.owner_id.is_not(None))
    scoped = visible_customer_ids_select(actor, include_shared=False)
    if scoped is not None:
        q = q.where(Customer.id.in_(scoped))
    found = list(db.session.execute(q.order_by(Customer.id)).scalars())
    if len(found) != len(ids):
        abort(404)
    return found


def pool_customers(actor: User, ids: list[int], pools: Optional[set[int]] = None
                   ) -> list[Customer]:
    """The selected customers if every one sits in one of `pools` (default: the pools the
    actor belongs to), else 404."""
    pools = (pool_service.member_pool_ids(actor) if pools is None else pools) or {0}
    found = list(db.session.execute(
        select(Customer).join(Ownership).where(Customer.id.in_(ids), Ownership.pool_id.in_(pools))
        .order_by(Customer.id)).scalars())
    if len(found) != len(ids):
        abort(404)
    return found


def sales_choices(actor: User, allowed=None) -> list[User]:
    """The reps and managers the actor may give customers to (`allowed`: a SELECT of ids,
    by default the actor's data scope)."""
    return org.active_sellers(assignable_owner_ids(actor) if allowed is None else allowed)


def chosen_ids(name: str) -> list[int]:
    return [i for i in (parse_pk(x.strip()) for x in request.form.getlist(name)) if i]


def flash_error(exc: GuishuError) -> None:
    if isinstance(exc, ValidationFailed):
        for message in exc.fields.values():
            flash(message, "danger")
    else:
        flash(exc.message, "danger")


def previewed(kind: str, *parts) -> str:
    """Fingerprint of what a preview showed; a commit with another selection previews again."""
    return kind + ":" + "|".join(ids_arg(sorted(p)) if isinstance(p, list) else str(p)
                                 for p in parts)


def wants_commit(token: str) -> bool:
    """Whether the form asks to commit exactly what its preview showed; a commit after the
    selection changed is turned into a new preview."""
    commit = request.form.get("step") == "commit"
    if commit and request.form.get("previewed") != token:
        flash(_("The selection changed since the preview: check the new preview."), "warning")
        return False
    return commit


class OwnershipView(BaseView):
    route_base = "/ownership"
    class_permission_name = RES_OWNERSHIP
    method_permission_name = {"release": "release", "distribute": "assign",
                              "apply_rules": "assign", "move_pool": "move_pool",
                              "departure": "handover", "grade": "grade"}
    default_view = "distribute"

    def _actor(self):
        return signed_in_user()

    # -- 放弃 ------------------------------------------------------------------------------
    @expose("/release", methods=["GET", "POST"])
    @has_access
    def release(self):
        actor = self._actor()
        ids = selected_ids()
        customers = owned_customers(actor, ids)
        pools = db.session.execute(select(Pool).where(
            Pool.id.in_(pool_service.member_pool_ids(actor) | {self._default_pool_id()}))
            .order_by(Pool.is_default.desc(), Pool.name)).scalars().all()
        reason = request.form.get("reason", "")
        if request.method == "POST":
            pool_id = request.form.get("pool_id", type=parse_pk)
            try:
                pool_service.release_to_pool(actor, ids, reason, pool_id)
            except GuishuError as exc:
                flash_error(exc)
            else:
                flash(ngettext("Released %(n)s customer to the pool.",
                               "Released %(n)s customers to the pool.", len(ids), n=len(ids)),
                      "success")
                return redirect(url_for("CustomerView.list"))
        return self.render_template("guishu/release.html", customers=customers, ids=ids_arg(ids),
                                    pools=pools, reason=reason)

    @staticmethod
    def _default_pool_id() -> int:
        return db.session.execute(select(Pool.id).where(
            Pool.is_default.is_(True), Pool.record_type == "customer")).scalar() or 0

    def _distribution_selection(self, actor: User):
        """(refusal, ids, customers) of a distribution page. Reps have the permission so that
        pool admins among them can distribute; the others get a refusal: back to the pool
        page with the rule that refuses them."""
        try:
            assignment.require_distributor(actor)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("PoolCustomerView.list")), [], []
        ids = selected_ids()
        return None, ids, pool_customers(actor, ids, assignment.distributable_pool_ids(actor))

    # -- 分配 / 平均分配 ----------------------------------------------------------------------
    @expose("/distribute", methods=["GET", "POST"])
    @has_access
    def distribute(self):
        actor = self._actor()
        refused, ids, customers = self._distribution_selection(actor)
        if refused is not None:
            return refused
        chosen = chosen_ids("owner_ids")
        plan, token = None, previewed("distribute", ids, chosen)
        if request.method == "POST":
            commit = wants_commit(token)
            try:
                plan = assignment.distribute(actor, ids, chosen, dry_run=not commit)
            except GuishuError as exc:
                flash_error(exc)
            else:
                if commit:
                    given = sum(len(line.customer_ids) for line in plan.lines)
                    reps = sum(1 for line in plan.lines if line.customer_ids)
                    if reps == 1:
                        done = ngettext("Assigned %(n)s customer to one rep.",
                                        "Assigned %(n)s customers to one rep.", given, n=given)
                    else:  # several reps: several customers
                        done = _("Assigned %(n)s customers to %(m)s reps.", n=given, m=reps)
                    flash(done, "success")
                    if plan.unassigned:
                        flash(ngettext("%(n)s customer stayed in the pool: every chosen rep "
                                       "is at the cap.",
                                       "%(n)s customers stayed in the pool: every chosen rep "
                                       "is at the cap.", len(plan.unassigned),
                                       n=len(plan.unassigned)), "warning")
                    return redirect(url_for("PoolCustomerView.list"))
        names = {c.id: c.name for c in customers}
        allowed = assignment.target_ids(actor, {c.ownership.pool_id for c in customers})
        # The preview names reps as the picker does, in a stable readable order.
        labels = org.user_labels([line.owner_id for line in plan.lines] +
                                 [s["owner_id"] for s in plan.skipped]) if plan else {}
        lines = sorted(plan.lines, key=lambda line: labels[line.owner_id][0]) if plan else []
        return self.render_template(
            "guishu/distribute.html", customers=customers, ids=ids_arg(ids),
            reps=sales_choices(actor, allowed), chosen=set(chosen), plan=plan, names=names,
            token=token, lines=lines, labels={i: label for i, (_k, label) in labels.items()})

    # -- 按归属规则分配 -----------------------------------------------------------------------
    @expose("/apply-rules", methods=["GET", "POST"])
    @has_access
    def apply_rules(self):
        actor = self._actor()
        refused, ids, customers = self._distribution_selection(actor)
        if refused is not None:
            return refused
        result = None
        if request.method == "POST":
            commit = request.form.get("step") == "commit"
            try:
                result = rules.apply_to_pool_customers(actor, ids, dry_run=not commit)
            except GuishuError as exc:
                flash_error(exc)
            else:
                if commit:
                    moved = sum(1 for p in result["plan"] if p["owner_id"])
                    flash(ngettext("The rules placed %(n)s customer with a rep.",
                                   "The rules placed %(n)s customers with reps.", moved,
                                   n=moved), "success")
                    return redirect(url_for("PoolCustomerView.list"))
        users = self._usernames(p["owner_id"] for p in (result or {}).get("plan", []))
        pools = dict(db.session.execute(select(Pool.id, Pool.name)).all())
        return self.render_template(
            "guishu/apply_rules.html", customers=customers, ids=ids_arg(ids), result=result,
            names={c.id: c.name for c in customers}, users=users, pools=pools)

    @staticmethod
    def _usernames(user_ids) -> dict[int, str]:
        wanted = {i for i in user_ids if i}
        if not wanted:
            return {}
        return {u.id: u.display_name for u in db.session.execute(
            select(User).where(User.id.in_(wanted))).scalars()}

    # -- 客户等级 (by hand) -------------------------------------------------------------------
    @expose("/grade", methods=["GET", "POST"])
    @has_access
    def grade(self):
        actor = self._actor()
        ids = selected_ids()
        customers = owned_customers(actor, ids)
        if request.method == "POST":
            grade = request.form.get("grade") or None
            try:
                classification.set_grade(actor, ids, grade)
            except GuishuError as exc:
                flash_error(exc)
            else:
                flash(ngettext("Grade set for %(n)s customer.", "Grade set for %(n)s customers.",
                               len(ids), n=len(ids)), "success")
                return redirect(url_for("CustomerView.list"))
        return self.render_template("guishu/grade.html", customers=customers, ids=ids_arg(ids))

    # -- 公海之间移动 -------------------------------------------------------------------------
    @expose("/move-pool", methods=["GET", "POST"])
    @has_access
    def move_pool(self):
        actor = self._actor()
        ids = selected_ids()
        customers = pool_customers(actor, ids)
        pools = db.session.execute(select(Pool).where(Pool.record_type == "customer")
                                   .order_by(Pool.name)).scalars().all()
        if request.method == "POST":
            try:
                pool_admin.move_to_pool(actor, ids, request.form.get("pool_id", type=parse_pk),
                                        request.form.get("reason", ""))
            except GuishuError as exc:
                flash_error(exc)
            else:
                flash(ngettext("Moved %(n)s customer to another pool.",
                               "Moved %(n)s customers to another pool.", len(ids), n=len(ids)),
                      "success")
                return redirect(url_for("PoolCustomerView.list"))
        return self.render_template("guishu/move_pool.html", customers=customers,
                                    ids=ids_arg(ids), pools=pools)

    # -- 离职交接 ----------------------------------------------------------------------------
    @expose("/departure/<int:user_id>", methods=["GET", "POST"])
    @has_access
    def departure(self, user_id: int):
        actor = self._actor()
        leaving = db.session.get(User, user_id)
        if leaving is None:
            abort(404)
        owned = db.session.execute(select(Customer).join(Ownership).where(
            Ownership.owner_id == user_id).order_by(Customer.id).limit(200)).scalars().all()
        total = db.session.execute(select(func.count()).select_from(Ownership).where(
            Ownership.owner_id == user_id)).scalar_one()
        mode = request.form.get("mode", "team")
        owner_id = request.form.get("owner_id", type=parse_pk)
        team = chosen_ids("owner_ids")
        pool_id = request.form.get("pool_id", type=parse_pk)
        token = previewed("departure", user_id, mode, owner_id, team, pool_id)
        plan = None
        if request.method == "POST":
            commit = wants_commit(token)
            try:
                plan = departure.handover(actor, user_id, mode, owner_id=owner_id,
                                          owner_ids=team, pool_id=pool_id, dry_run=not commit)
            except GuishuError as exc:
                flash_error(exc)
            else:
                if commit:
                    flash(ngettext("%(name)s is marked departed; %(n)s customer was handed "
                                   "over.",
                                   "%(name)s is marked departed; %(n)s customers were handed "
                                   "over.", plan["customers"], name=leaving.display_name,
                                   n=plan["customers"]), "success")
                    return redirect(url_for("GuishuUserDBModelView.list"))
        reps = [u for u in sales_choices(actor) if u.id != user_id]
        return self.render_template(
            "guishu/departure.html", leaving=leaving, owned=owned, total=total, mode=mode,
            owner_id=owner_id, team=set(team), pool_id=pool_id, reps=reps,
            pools=db.session.execute(select(Pool).where(Pool.record_type == "customer")
                                   .order_by(Pool.name)).scalars().all(),
            plan=plan, users=self._usernames(a["owner_id"] for a in (plan or {}).get(
                "assignments", [])), modes=departure.MODES, token=token)


def redirect_to(endpoint: str, items) -> Optional[object]:
    """From a list action to one of the forms above, carrying the selected ids."""
    items = items if isinstance(items, list) else [items]
    return redirect(url_for(endpoint, ids=ids_arg([c.id for c in items])))
