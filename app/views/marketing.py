"""Marketing pages (市场): segments (客户分群) with their preview, the tag list (标签), and
tagging records one at a time (tag chips) or in bulk (the customer and lead lists' "tag"
action). Thin callers of app.services.marketing_segments and app.services.tags, which check
roles and scope again."""
from __future__ import annotations

import json

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _, ngettext
from sqlalchemy import distinct, func, select

from app.extensions import db
from app.models import Contact, Customer, Lead
from app.models.lead import LEAD_SOURCES
from app.models.marketing import RecordTag, SEGMENT_RECORD_TYPES, Segment, Tag
from app.security import RES_CONTACT, RES_CUSTOMER, RES_LEAD, RES_SEGMENT, RES_TAG
from app.services import marketing_segments as segments, tags as tag_service
from app.services.errors import GuishuError, ValidationFailed
from app.services.region_names import CITIES, PROVINCES
from app.views.base import local_path, signed_in_user
from app.views.ownership import flash_error, ids_arg, selected_ids

RECORD_RESOURCES = {"customer": RES_CUSTOMER, "contact": RES_CONTACT, "lead": RES_LEAD}
OPTION_LIMIT = 300  # distinct values offered by a picker (typed values are kept besides)


def _distinct(column) -> list[str]:
    """Up to OPTION_LIMIT distinct values of an indexed text column, for a picker."""
    return [v for v in db.session.execute(
        select(distinct(column)).where(column.isnot(None), column != "")
        .order_by(column).limit(OPTION_LIMIT)).scalars()]


def _with(chosen: list, options) -> list:
    """The options, with chosen values that are not among them kept (first)."""
    options = list(options)
    return [v for v in chosen if v not in options] + options


def criteria_from_form(form) -> dict:
    """The criteria as the segment form posts them (multi-selects, a number, a choice)."""
    out: dict = {}
    for key in ("provinces", "cities", "industries", "sources", "grades", "categories",
                "tag_ids"):
        values = [v for v in form.getlist(key) if v != ""]
        if values:
            out[key] = values
    days = (form.get("min_days_since_followup") or "").strip()
    if days:
        out["min_days_since_followup"] = days
    if form.get("won"):
        out["won"] = form.get("won")
    return out


def criteria_text(row: Segment, tag_names: dict[int, str]) -> list[str]:
    """The criteria in words, for the list and the preview."""
    try:
        c = json.loads(row.criteria or "{}")
    except ValueError:
        return []
    parts = []
    labels = {"provinces": _("Province"), "cities": _("City"), "industries": _("Industry"),
              "sources": _("Source"), "grades": _("Grade"),
              "categories": _("Customer category")}
    for key, label in labels.items():
        if c.get(key):
            parts.append(f"{label}：{'、'.join(str(v) for v in c[key])}")
    if c.get("tag_ids"):
        parts.append(_("Tags") + "：" + "、".join(tag_names.get(i, f"#{i}")
                                                 for i in c["tag_ids"]))
    if c.get("min_days_since_followup") is not None:
        parts.append(_("No follow-up for %(n)s days", n=c["min_days_since_followup"]))
    if c.get("won"):
        parts.append(_("Won") if c["won"] == "yes" else _("Not won"))
    return parts


class SegmentView(BaseView):
    """客户分群: list, add, edit, preview, delete (admins and marketing)."""

    route_base = "/segments"
    class_permission_name = RES_SEGMENT
    method_permission_name = {"list": "read", "preview": "read", "add": "write",
                              "edit": "write", "delete": "delete"}
    default_view = "list"

    @expose("/")
    @expose("/list/")
    @has_access
    def list(self):
        rows = list(db.session.execute(select(Segment).order_by(Segment.id.desc())
                                       .limit(500)).scalars())
        names = dict(db.session.execute(select(Tag.id, Tag.name)).all())
        return self.render_template(
            "guishu/segment_list.html", rows=rows, types=SEGMENT_RECORD_TYPES,
            described={r.id: criteria_text(r, names) for r in rows},
            can_write=self.appbuilder.sm.has_access("can_write", RES_SEGMENT),
            can_delete=self.appbuilder.sm.has_access("can_delete", RES_SEGMENT))

    def _form(self, row, values: dict):
        criteria = values.get("criteria") or {}
        return self.render_template(
            "guishu/segment_form.html", row=row, v=values, c=criteria,
            types=SEGMENT_RECORD_TYPES,
            provinces=_with(criteria.get("provinces", []), PROVINCES),
            cities=_with(criteria.get("cities", []), CITIES),
            industries=_with(criteria.get("industries", []), _distinct(Customer.industry)),
            sources=_with(criteria.get("sources", []), list(LEAD_SOURCES) + [
                s for s in _distinct(Customer.source) if s not in LEAD_SOURCES]),
            source_labels={k: str(v) for k, v in LEAD_SOURCES.items()},
            tags=tag_service.all_tags())

    def _posted(self) -> dict:
        return {"name": request.form.get("name", ""),
                "description": request.form.get("description", ""),
                "record_type": request.form.get("record_type", "customer"),
                "include_pool": bool(request.form.get("include_pool")),
                "criteria": criteria_from_form(request.form)}

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        actor = signed_in_user()
        if request.method == "POST":
            values = self._posted()
            try:
                row = segments.create_segment(actor, values)
            except GuishuError as exc:
                flash_error(exc)
                return self._form(None, values)
            flash(_("Segment saved: %(name)s", name=row.name), "success")
            return redirect(url_for("SegmentView.preview", pk=row.id))
        if not segments.may_manage(actor):
            abort(403)
        return self._form(None, {"record_type": "customer", "criteria": {}})

    @expose("/edit/<int:pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        actor = signed_in_user()
        try:
            row = segments.get_segment(actor, pk)
        except GuishuError:
            abort(404)
        if request.method == "POST":
            values = self._posted()
            try:
                segments.update_segment(actor, row.id, values)
            except GuishuError as exc:
                flash_error(exc)
                return self._form(row, values)
            flash(_("Segment saved: %(name)s", name=row.name), "success")
            return redirect(url_for("SegmentView.preview", pk=row.id))
        return self._form(row, {"name": row.name, "description": row.description or "",
                                "record_type": row.record_type,
                                "include_pool": row.include_pool,
                                "criteria": segments.criteria_of(row)})

    @expose("/preview/<int:pk>")
    @has_access
    def preview(self, pk):
        actor = signed_in_user()
        try:
            row = segments.get_segment(actor, pk)
        except GuishuError:
            abort(404)
        names = dict(db.session.execute(select(Tag.id, Tag.name)).all())
        return self.render_template(
            "guishu/segment_preview.html", row=row, types=SEGMENT_RECORD_TYPES,
            described=criteria_text(row, names), count=segments.count(row),
            members=segments.preview(row, actor, 50),
            using=segments.campaigns_using(row.id),
            can_write=self.appbuilder.sm.has_access("can_write", RES_SEGMENT),
            can_delete=self.appbuilder.sm.has_access("can_delete", RES_SEGMENT))

    @expose("/delete/<int:pk>", methods=["POST"])
    @has_access
    def delete(self, pk):
        actor = signed_in_user()
        try:
            segments.delete_segment(actor, pk)
        except GuishuError as exc:
            if exc.status == 404:
                abort(404)
            flash_error(exc)
            return redirect(url_for("SegmentView.preview", pk=pk))
        flash(_("Segment deleted."), "success")
        return redirect(url_for("SegmentView.list"))


class TagView(BaseView):
    """标签: the list (everyone with a role reads it; admins and marketing keep it), tagging
    one record from its page, and the bulk form behind the lists' "tag" action."""

    route_base = "/tags"
    class_permission_name = RES_TAG
    method_permission_name = {"list": "read", "add": "write", "edit": "write",
                              "delete": "delete", "record": "read", "apply": "read"}
    default_view = "list"

    @expose("/")
    @expose("/list/")
    @has_access
    def list(self):
        used = dict(db.session.execute(select(RecordTag.tag_id, func.count())
                                       .group_by(RecordTag.tag_id)).all())
        return self.render_template(
            "guishu/tag_list.html", rows=tag_service.all_tags(), used=used,
            can_write=self.appbuilder.sm.has_access("can_write", RES_TAG)
            and tag_service.may_edit_list(signed_in_user()),
            can_delete=self.appbuilder.sm.has_access("can_delete", RES_TAG))

    def _values(self) -> dict:
        return {k: request.form.get(k, "") for k in ("name", "color", "description")}

    @expose("/add", methods=["POST"])
    @has_access
    def add(self):
        try:
            tag = tag_service.create_tag(signed_in_user(), self._values())
        except GuishuError as exc:
            flash_error(exc)
        else:
            flash(_("Tag saved: %(name)s", name=tag.name), "success")
        return redirect(url_for("TagView.list"))

    @expose("/edit/<int:pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        actor = signed_in_user()
        tag = db.session.get(Tag, pk)
        if tag is None:
            abort(404)
        if not tag_service.may_edit_list(actor):
            abort(403)
        values = {"name": tag.name, "color": tag.color or "",
                  "description": tag.description or ""}
        if request.method == "POST":
            values = self._values()
            try:
                tag_service.update_tag(actor, tag.id, values)
            except GuishuError as exc:
                flash_error(exc)
            else:
                flash(_("Tag saved: %(name)s", name=tag.name), "success")
                return redirect(url_for("TagView.list"))
        return self.render_template("guishu/tag_form.html", tag=tag, v=values)

    @expose("/delete/<int:pk>", methods=["POST"])
    @has_access
    def delete(self, pk):
        try:
            removed = tag_service.delete_tag(signed_in_user(), pk)
        except ValidationFailed:
            abort(404)
        except GuishuError as exc:
            flash_error(exc)
        else:
            flash(ngettext("Tag deleted; %(n)s record lost it.",
                           "Tag deleted; %(n)s records lost it.", removed, n=removed),
                  "success")
        return redirect(url_for("TagView.list"))

    def _may_tag(self, record_type: str) -> None:
        if record_type not in RECORD_RESOURCES:
            abort(404)
        if not self.appbuilder.sm.has_access("can_tag", RECORD_RESOURCES[record_type]):
            abort(403)

    @expose("/record/<record_type>/<int:pk>", methods=["POST"])
    @has_access
    def record(self, record_type, pk):
        """Add or remove one tag on one record (the chips on its page), then back there."""
        self._may_tag(record_type)
        verb = request.form.get("op")
        if verb not in ("add", "remove"):
            abort(400)
        fn = tag_service.tag_records if verb == "add" else tag_service.untag_records
        try:
            fn(signed_in_user(), record_type, [pk], request.form.get("tag_id"))
        except GuishuError as exc:
            if exc.status == 404:
                abort(404)
            flash_error(exc)
        else:
            flash(_("Tag added.") if verb == "add" else _("Tag removed."), "success")
        return redirect(local_path(request.form.get("next")) or url_for("TagView.list"))

    @expose("/apply/<record_type>", methods=["GET", "POST"])
    @has_access
    def apply(self, record_type):
        """Tag or untag the records a list selected (scope re-checked: one outside is 404)."""
        self._may_tag(record_type)
        actor = signed_in_user()
        ids = selected_ids()
        if tag_service.taggable_ids(actor, record_type, ids) != set(ids):
            abort(404)
        if request.method == "POST":
            verb = request.form.get("op")
            fn = tag_service.untag_records if verb == "remove" else tag_service.tag_records
            try:
                n = fn(actor, record_type, ids, request.form.get("tag_id"))
            except GuishuError as exc:
                flash_error(exc)
            else:
                flash(ngettext("%(n)s record changed.", "%(n)s records changed.", n, n=n),
                      "success")
                back = {"customer": "CustomerView.list", "lead": "LeadView.list",
                        "contact": "ContactView.list"}[record_type]
                return redirect(url_for(back))
        model = {"customer": Customer, "contact": Contact, "lead": Lead}[record_type]
        rows = list(db.session.execute(select(model).where(model.id.in_(ids))
                                       .order_by(model.id)).scalars())
        current = tag_service.tags_of(record_type, ids)
        return self.render_template("guishu/tag_apply.html", rows=rows, ids=ids_arg(ids),
                                    record_type=record_type, current=current,
                                    tags=tag_service.all_tags())


def tag_context(actor, has_access, record_type: str, ids) -> dict:
    """What a record page needs for its tag chips: each record's tags, the tag list, and
    whether the user may tag these records (permission, then scope: one statement each)."""
    ids = [i for i in ids if i is not None]
    may = bool(ids) and has_access("can_tag", RECORD_RESOURCES[record_type])
    taggable = tag_service.taggable_ids(actor, record_type, ids) if may else set()
    return {"tags": tag_service.tags_of(record_type, ids), "taggable": taggable,
            "all_tags": tag_service.all_tags() if taggable else []}


def tag_action_redirect(record_type: str, items):
    """From a list's "tag" action to the bulk form, carrying the selection."""
    items = items if isinstance(items, list) else [items]
    return redirect(url_for("TagView.apply", record_type=record_type,
                            ids=ids_arg([i.id for i in items])))
