"""工作台: my customers by stage with days left before reclaim, my rules and limits, my
transfer requests; and the manager's team view."""
from __future__ import annotations

from flask import abort, request
from flask_appbuilder import BaseView, expose, has_access

from app.models.customer import utcnow
from app.models.target import PERIOD_KINDS
from app.security import (RES_WORKBENCH, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, current_user,
                          has_role)
from app.services import followups, policies, risk, targets, tasks, workbench
from app.views.targets import money, period_args, rate


class WorkbenchView(BaseView):
    route_base = "/workbench"
    class_permission_name = RES_WORKBENCH
    method_permission_name = {"index": "read", "team": "read"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        user = current_user()
        tab = request.args.get("tab", "new")
        tab = tab if tab in workbench.TABS or tab == "pool" else "new"
        # The policy, the counts and the segment rule are read once and shared by every panel.
        policy, counts = policies.effective_policy(user.id), workbench.standing(user.id)
        now = utcnow()
        rule = workbench.segment_rule(user, now)
        rows, next_cursor = workbench.my_customers_page(
            user, tab, request.args.get("after"), policy, rule=rule) \
            if tab != "pool" else ([], None)
        # One more than shown: the badge says "20+" only when there are more.
        soon = workbench.about_to_be_reclaimed(user, workbench.SOON_LIMIT + 1, now=now,
                                               policy=policy, rule=rule)
        return self.render_template(
            "guishu/workbench.html", tab=tab, tabs=workbench.TABS,
            counts=workbench.tab_counts(user, counts),
            rows=rows, next_cursor=next_cursor, paged=bool(request.args.get("after")),
            pool_rows=workbench.pool_customers(user) if tab == "pool" else [],
            limits=workbench.limits(user.id, policy, counts),
            requests=workbench.my_requests(user),
            soon=soon[:workbench.SOON_LIMIT], soon_more=len(soon) > workbench.SOON_LIMIT,
            absence=workbench.my_absence(user, counts),
            reminders=followups.due_reminders(user.id, followups.local_today()),
            my_tasks=tasks.my_tasks(user.id),
            # 业绩目标: its own panel (reps and managers hold targets), month or quarter.
            my_target=targets.my_attainment(user, *period_args("target_"))
            if has_role(user, ROLE_REP, ROLE_MANAGER) else None,
            target_kinds=PERIOD_KINDS, money=money, rate=rate,
            service=workbench.ticket_panels(user, now),
            # 流失风险 (issue 20 §5): the owner's own customers, or why the model is not shown.
            risk=risk.panel(user, policy=policy) if has_role(user, ROLE_REP, ROLE_MANAGER)
            else None)

    @expose("/team")
    @has_access
    def team(self):
        user = current_user()
        if not has_role(user, ROLE_MANAGER, ROLE_ADMIN):
            abort(403)
        kind, start = period_args()
        return self.render_template("guishu/team.html", members=workbench.team(user),
                                    attainment=targets.team_attainment(user, kind, start),
                                    kinds=PERIOD_KINDS, money=money, rate=rate)
