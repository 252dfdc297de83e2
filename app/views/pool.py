"""The public pool page (公海): pool customers of the pools the user belongs to, contacts
masked for everyone but admins, and a claim action that calls app.services.pool."""
from __future__ import annotations

import io

from flask import Response, abort, flash, redirect, request, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _, ngettext
from sqlalchemy import select

from app.models import Customer, Ownership
from app.security import RES_POOL_CUSTOMERS, current_user
from app.services import exports, pool as pool_service, pool_admin
from app.services.errors import GuishuError, NotInPool
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, local_path, readable_formatters
from app.search_filters import quick_search_filters
from app.views.customers import CUSTOMER_LABELS, CUSTOMER_LIST_LOAD, refuse_bad_search
from app.views.ownership import redirect_to


class PoolScopeFilter(BaseFilter):
    """Only customers sitting in a pool the user may browse (app.services.pool)."""

    name = "pool scope"
    arg_name = None

    def apply(self, query, value):
        user = current_user()
        pools = pool_service.browsable_pool_ids(user) if user is not None else set()
        return query.filter(Customer.id.in_(
            select(Ownership.customer_id).where(Ownership.pool_id.in_(pools or {0}))))


def administered_pool_ids() -> set[int]:
    """For templates: the pools the signed-in user administers."""
    user = current_user()
    return pool_admin.admin_pool_ids(user) if user is not None else set()


class PoolCustomerView(ScopedModelView):
    datamodel = KeysetInterface(Customer, load=CUSTOMER_LIST_LOAD)
    order_columns = ["name", "created_at"]
    class_permission_name = RES_POOL_CUSTOMERS
    route_base = "/pool"
    list_template = "guishu/pool_list.html"
    base_filters = [["id", PoolScopeFilter, lambda: None]] + quick_search_filters("id")
    base_permissions = ["can_read", "can_claim", "can_assign", "can_move_pool"]
    method_permission_name = dict(ScopedModelView.method_permission_name, claim="claim",
                                  distribute="assign", apply_rules="assign",
                                  move_pool="move_pool", export="read")
    base_order = ("id", "desc")
    list_title = show_title = _("Public pool")
    list_columns = ["name", "type_label", "industry", "province", "city", "owner_label",
                    "mobile_shown", "phone_shown", "email_shown"]
    show_columns = ["name", "type_label", "owner_label", "industry", "source", "product_line",
                    "province", "city", "mobile_shown", "phone_shown", "email_shown"]
    search_columns = ["name", "customer_type", "industry", "province", "city", "source",
                      "product_line"]
    label_columns = dict(CUSTOMER_LABELS, owner_label=_("Pool"))
    formatters_columns = dict(
        readable_formatters("industry", "province", "city", "source", "product_line",
                            "mobile_shown", "phone_shown", "email_shown"))

    @expose("/list/")
    @has_access
    def list(self):
        return refuse_bad_search(self) or super().list()

    @action("claim", _("Claim"), _("Claim the selected customers?"), "fa-hand-paper-o",
            single=False)
    def claim(self, items):
        items = items if isinstance(items, list) else [items]
        try:
            ids = pool_service.claim_from_pool(self.actor(), [c.id for c in items])
        except GuishuError as exc:
            flash(exc.message, "danger")
            if isinstance(exc, NotInPool):  # claimed by someone else meanwhile
                return redirect(url_for("PoolCustomerView.list"))
            # The pool customer's page (a claimed customer's page is another one).
            back = local_path(request.form.get("back"))
            if back:
                return redirect(back)
        else:
            flash(ngettext("Claimed %(n)s customer.", "Claimed %(n)s customers.", len(ids),
                           n=len(ids)), "success")
        return redirect(local_path(request.form.get("next")) or self.get_redirect())

    def rows_out_of_scope(self, name, missing, asked):
        """A claim race lost (someone else claimed first, the list was stale): say so and go
        back to the pool. A bulk claim stays all or nothing, like the service: nothing is
        claimed, the user refreshes and picks again. Ids never in the user's pools get the
        same answer, naming nothing."""
        if name != "claim":
            return super().rows_out_of_scope(name, missing, asked)
        if asked == 1:
            flash(_("This customer is no longer in the pool (someone may have claimed it)."),
                  "warning")
        else:
            flash(ngettext("%(n)s of the selected customers is no longer in the pool (someone "
                           "may have claimed it): nothing was claimed. Pick again from the "
                           "refreshed list.",
                           "%(n)s of the selected customers are no longer in the pool (someone "
                           "may have claimed them): nothing was claimed. Pick again from the "
                           "refreshed list.", missing, n=missing), "warning")
        return redirect(url_for("PoolCustomerView.list"))

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """A pool customer's page: the customer page, with 领取 for those who may claim."""
        from app.views.customers import render_customer_page

        item = self._scoped_get(pk)
        self.update_redirect()
        return render_customer_page(self, item, url_for("PoolCustomerView.show", pk=item.id))

    @expose("/export.csv")
    @has_access
    def export(self):
        """Pool admins (and admins) export the customers of the pools they administer, with
        full contact details: they manage those pools."""
        pools = pool_admin.admin_pool_ids(self.actor())
        if not pools:
            abort(403)
        buf = io.StringIO()
        buf.write("\ufeff")  # Excel in China opens UTF-8 CSV correctly only with a BOM
        exports.write_csv(self.actor(), buf, exports.pool_rows(pools))
        return Response(buf.getvalue(), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": "attachment; filename=pool.csv"})

    @action("distribute", _("Assign / distribute"), None, "fa-share-alt", single=False)
    def distribute(self, items):
        return redirect_to("OwnershipView.distribute", items)

    @action("apply_rules", _("Apply assignment rules"), None, "fa-random", single=False)
    def apply_rules(self, items):
        return redirect_to("OwnershipView.apply_rules", items)

    @action("move_pool", _("Move to another pool"), None, "fa-arrows", single=False)
    def move_pool(self, items):
        return redirect_to("OwnershipView.move_pool", items)
