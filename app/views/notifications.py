"""The notification centre (通知): the user's own in-app notifications, newest first, with
"open" (marks read, follows the link) and "mark all read". Nobody sees another's."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _, ngettext

from app.security import RES_NOTIFICATION, current_user
from app.services import notifications
from app.services.errors import NotFound
from app.services.ids import parse_pk
from app.views.base import local_path, signed_in_user


BELL_CAP = 99


def unread_notifications() -> str:
    """For the navbar's bell: the signed-in user's unread count, "99+" beyond 99 (empty when
    none or signed out)."""
    user = current_user()
    n = notifications.unread_count(user.id, BELL_CAP) if user is not None else 0
    return f"{BELL_CAP}+" if n > BELL_CAP else (str(n) if n else "")


PAGE_SIZE = 100


class NotificationView(BaseView):
    route_base = "/notifications"
    class_permission_name = RES_NOTIFICATION
    method_permission_name = {"index": "read", "open": "read", "read_all": "read"}
    default_view = "index"

    def _user(self):
        return signed_in_user()

    @expose("/")
    @has_access
    def index(self):
        # ?before=<id>: the next older page (keyset; a bad value is the newest page).
        before = request.args.get("before", type=parse_pk)
        rows = notifications.recent(self._user().id, PAGE_SIZE + 1, before)
        return self.render_template("guishu/notifications.html", rows=rows[:PAGE_SIZE],
                                    older=rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE
                                    else None, paged=before is not None)

    @expose("/<int:pk>/open", methods=["POST"])
    @has_access
    def open(self, pk: int):
        try:
            link = notifications.open_one(self._user().id, pk)
        except NotFound:
            abort(404)
        return redirect(local_path(link) or url_for("NotificationView.index"))

    @expose("/read-all", methods=["POST"])
    @has_access
    def read_all(self):
        n = notifications.mark_read(self._user().id)
        flash(ngettext("%(n)s notification marked read.", "%(n)s notifications marked read.",
                       n, n=n), "success")
        return redirect(url_for("NotificationView.index"))
