"""ModelView base that applies the data scope on every route FAB generates.

FAB 5.3's `action` and `action_post` fetch rows with `datamodel.get(pk)` and skip
`base_filters`; they are overridden here to go through the scoped query and refuse the whole
request if any id is outside it.
"""
from __future__ import annotations

import copy
import re
from typing import Optional
from urllib.parse import urlencode

from flask import (abort, current_app, flash, has_request_context, jsonify, redirect, request,
                   url_for)
from flask_babel import gettext
from markupsafe import Markup
from flask_appbuilder import ModelView, expose, has_access
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.const import FLAMSG_ERR_SEC_ACCESS_DENIED
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.urltools import (get_filter_args, get_order_args, get_page_args,
                                      get_page_size_args)
from flask_appbuilder.widgets import ListWidget
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from sqlalchemy import Integer
from wtforms import StringField
from wtforms.fields.core import UnboundField

from app.paging import KeysetInterface, Page
from app.security import METHOD_PERMISSIONS, current_user
from app.services.errors import GuishuError, ValidationFailed
from app.services.ids import parse_pk
from app.services.times import local_text
from app.time_filters import in_business_time


def blank(value):
    """Empty cell instead of FAB's 'None' for a missing value."""
    return "" if value is None else value


def readable(value):
    """A cell as words: booleans as Yes / No in the reader's language, nothing for None (FAB
    would print True, False and None); anything else as it is."""
    if value is True or value is False:
        return gettext("Yes") if value else gettext("No")
    return "" if value is None else value


def one_line(value) -> Markup:
    """A cell that must not wrap (a name, a time squeezed by a wide neighbour)."""
    return Markup('<span class="text-nowrap">{}</span>').format("" if value is None else value)


def shown_columns(view) -> list[str]:
    """The columns a view's list and show pages print (show fieldsets included)."""
    columns = list(view.list_columns or []) + list(view.show_columns or [])
    # FAB's user view has a second show page, "my profile" (user_show_fieldsets).
    fieldsets = (view.show_fieldsets or []) + (getattr(view, "user_show_fieldsets", None) or [])
    for _name, spec in fieldsets:
        columns += list(spec.get("fields", []))
    return columns


def readable_cells(view) -> None:
    """Give every printed column without its own formatter one: date-times in business time,
    booleans as Yes / No, None as an empty cell (a view's own formatter wins)."""
    view.formatters_columns = dict(view.formatters_columns or {})
    for column in shown_columns(view):
        if column in view.formatters_columns:
            continue
        view.formatters_columns[column] = (minutes if view.datamodel.is_datetime(column)
                                           else readable)


def readable_blank_choices(view) -> None:
    """A select of related rows that may be left empty offers "—" for nothing; FAB's empty
    blank_text leaves the browser's select showing its value, "__None"."""
    for form in (getattr(view, "add_form", None), getattr(view, "edit_form", None)):
        for unbound in vars(form or object).values():
            if not isinstance(unbound, UnboundField):
                continue
            kwargs = unbound.kwargs
            if issubclass(unbound.field_class, QuerySelectField) and kwargs.get("allow_blank") \
                    and not kwargs.get("blank_text"):
                kwargs["blank_text"] = "—"


class ReadableCells:
    """Mixin for FAB's own views (users, roles…): the same readable cells and blank choices
    as ScopedModelView."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        readable_cells(self)
        readable_blank_choices(self)


def minutes(value):
    """A stored time as the pages show it: business time (GUISHU_TIMEZONE), to the minute."""
    return local_text(value)


def readable_formatters(*columns: str, times=("created_at", "updated_at", "departed_at")) -> dict:
    out = {c: blank for c in columns}
    out.update({c: minutes for c in times})
    return out


def signed_in_user():
    """The signed-in user for a page that acts as them (401 if there is none)."""
    user = current_user()
    if user is None:
        abort(401)
    return user


def local_path(target: str | None) -> str | None:
    """`target` if it is a path on this site (safe to redirect to), else None. Browsers drop
    tabs and newlines from a URL ("/\t/evil.com" is "//evil.com") and a header cannot carry
    them, so any control character or whitespace refuses the target."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127
                                      for ch in target):
        return None
    return target


def typed_relation_searches(view) -> None:
    """The search form's customer and user columns are typed (an id or part of the name,
    app.relation_filters), not a select of every customer or user."""
    extra = dict(view.search_form_extra_fields or {})
    for column in view.search_columns or []:
        if column not in extra and (view.datamodel.is_customer_relation(column)
                                    or view.datamodel.is_user_relation(column)):
            # The column's label (translated), not its name, on the filter menu.
            label = (view.label_columns or {}).get(column, column)
            extra[column] = StringField(label, widget=BS3TextFieldWidget())
    view.search_form_extra_fields = extra


class KeysetListWidget(ListWidget):
    """FAB's list table with keyset paging: first / previous / next, page sizes and the
    (capped) record count, instead of numbered pages (guishu/keyset_list.html)."""

    template = "guishu/keyset_list.html"


PAGE_SIZES = (25, 50, 100)
_ASCII_NUMBER = re.compile(r"[0-9]{1,6}")
_WHOLE_NUMBER = re.compile(r"[-+]?[0-9]{1,19}")
_FILTER_ARG = re.compile(r"_flt_(\d)_(.*)", re.S)  # as FAB's get_filter_args reads them
INT_MIN, INT_MAX = -2 ** 63, 2 ** 63 - 1  # BIGINT: the widest integer column


def with_query(path: str, args) -> str:
    """`path` with the query `args` (a MultiDict: a repeated argument, as two filters on one
    column, stays repeated). Not url_for's keywords: an argument named like one of its own
    (`endpoint`, `_method`) would break the page."""
    query = urlencode(list(args.items(multi=True)))
    return f"{path}?{query}" if query else path


def keyset_link(modelview_name: str, after: str | None = None, before: str | None = None,
                page_size: int | None = None) -> str:
    """This page's URL with the list `modelview_name` moved: after / before a cursor, back to
    its first page (neither), or at another page size (keeping its position)."""
    args = request.args.copy()
    moved = after is not None or before is not None or page_size is None
    for key in list(args):
        if key == f"page_{modelview_name}" or moved and key in (
                f"after_{modelview_name}", f"before_{modelview_name}"):
            args.poplist(key)
    if after:
        args[f"after_{modelview_name}"] = after
    if before:
        args[f"before_{modelview_name}"] = before
    if page_size:
        args.setlist(f"psize_{modelview_name}", [page_size])
    return with_query(url_for(request.endpoint, **(request.view_args or {})), args)


class ScopedModelView(ModelView):
    """A ModelView whose every route applies the data scope, and whose lists page by keyset
    (app.paging): declare `datamodel = KeysetInterface(Model, load=[joinedload(...)])` with
    the loads its label columns need, and `order_columns` (each NOT NULL with an index on
    (column, id))."""

    method_permission_name = METHOD_PERMISSIONS
    page_size = 25
    list_widget = KeysetListWidget

    # FAB keeps one `_filters` per view and fills it from each request's arguments (list,
    # add, edit, the search widget): with threaded workers two users' requests filled the
    # same object, and a list could run with the other request's filters. Each request gets
    # its own copy of the view's (empty) filters, the same object throughout the request.
    @property
    def _filters(self):
        shared = self.__dict__.get("_shared_filters")
        if shared is None or not has_request_context():
            return shared
        # On the request itself, not flask.g: g belongs to the app context, which nested
        # request contexts (tests, internal calls) share.
        mine = request._get_current_object().__dict__.setdefault("guishu_view_filters", {})
        filters = mine.get(id(self))
        if filters is None:
            filters = mine[id(self)] = copy.copy(shared)
            filters.filters, filters.values = list(shared.filters), list(shared.values)
        return filters

    @_filters.setter
    def _filters(self, value):
        self.__dict__["_shared_filters"] = value

    def __init__(self, **kwargs):
        # Business time both ways: the search filters read typed times in GUISHU_TIMEZONE, and
        # every date-time column on the list and show pages is shown in it; booleans read
        # Yes / No and a missing value is an empty cell (a view's own formatter wins).
        in_business_time(self.datamodel)
        if not isinstance(self.datamodel, KeysetInterface):
            # Small settings tables (departments, pools, rules…) keep FAB's numbered pages.
            self.list_widget = ListWidget
        else:
            typed_relation_searches(self)
        super().__init__(**kwargs)
        readable_cells(self)
        readable_blank_choices(self)

    def _init_titles(self):
        # FAB makes a missing title up in English ("Add Department"): a view that names no
        # add or edit title has no such page a user reaches, so its own title stands in.
        own = self.show_title or self.list_title
        self.add_title, self.edit_title = self.add_title or own, self.edit_title or own
        super()._init_titles()

    # A form opened from another page (the customer page's 记跟进, 成交, contacts) goes back
    # there when saved: ?next=<path on this site>; otherwise FAB's page history.
    def post_add_redirect(self):
        return redirect(local_path(request.args.get("next")) or self.get_redirect())

    def post_edit_redirect(self):
        return redirect(local_path(request.args.get("next")) or self.get_redirect())

    def _deserialize_pk_if_composite(self, pk):
        value = parse_pk(pk)
        if value is None:
            abort(404)
        return value

    def _bad_list_args(self) -> Optional[str]:
        """The first list argument FAB would fail on (it parses page, page size, order and
        filter arguments with no validation: 500 on junk), or None: a page number that is
        not ASCII digits ("²" is a digit to isdigit(), not to int()), a filter index beyond
        the column's filters (FAB indexes its list with it), a whole-number filter value
        beyond the column's integers (SQLite overflows)."""
        for key, value in request.args.items(multi=True):
            if key.startswith(("page_", "psize_")):
                if not _ASCII_NUMBER.fullmatch(value) or int(value) > 100000 or (
                        key.startswith("psize_") and int(value) == 0):
                    return key
            if key.startswith("_oc_") and value not in self.order_columns:
                return key
            if key.startswith("_od_") and value not in ("asc", "desc"):
                return key
            if key.startswith("_flt_") and self._bad_filter_arg(key, value):
                return key
        return None

    def _bad_filter_arg(self, key: str, value: str) -> bool:
        m = _FILTER_ARG.fullmatch(key)
        if m is None:
            return False  # not a filter FAB reads (it matches the same pattern)
        column, index = m.group(2), int(m.group(1))
        if column not in self._filters.get_search_filters():
            return False  # FAB ignores a column that is not searchable
        if index >= len(self._filters._all_filters.get(column, ())):  # FAB indexes this list
            return True
        attr = getattr(self.datamodel.obj, column, None)
        columns = getattr(getattr(attr, "property", None), "columns", None) or []
        if columns and isinstance(columns[0].type, Integer) and value.strip():
            text = value.strip()
            return not _WHOLE_NUMBER.fullmatch(text) or not INT_MIN <= int(text) <= INT_MAX
        return False

    def _get_list_widget(self, filters, actions=None, order_column="", order_direction="",
                         page=None, page_size=None, widgets=None, **kwargs):
        """FAB's list widget, filled by one keyset page (app.paging) instead of an exact count
        and OFFSET; the widget gets the page (cursors, total) as `paging`."""
        if not isinstance(self.datamodel, KeysetInterface):
            return super()._get_list_widget(filters, actions, order_column, order_direction,
                                            page, page_size, widgets, **kwargs)
        widgets = widgets or {}
        actions = actions or self.actions
        page_size = page_size if page_size in PAGE_SIZES else self.page_size
        if not order_column and self.base_order:
            order_column, order_direction = self.base_order
        name = self.__class__.__name__
        # Only the list's own page may leave its count to /count/, which rebuilds the filters
        # from the request: a related list (a customer's history on its edit page) is
        # filtered by its parent, which no URL argument carries.
        own_list = filters is self._filters
        paging = self.datamodel.page(
            filters.get_joined_filters(self._base_filters), order_column,
            order_direction or "asc", page_size,
            after=request.args.get(f"after_{name}"), before=request.args.get(f"before_{name}"),
            estimate=True,
            defer_from=current_app.config.get("LIST_COUNT_DEFER_AT") if own_list else None)
        rows = paging.rows
        pks = [self._serialize_pk_if_composite(pk) for pk in self.datamodel.get_keys(rows)]
        widgets["list"] = self.list_widget(
            label_columns=self.label_columns, include_columns=self.list_columns,
            value_columns=self.datamodel.get_values(rows, self.list_columns),
            order_columns=self.order_columns, formatters_columns=self.formatters_columns,
            # FAB's table needs a number ("no records" at 0): a deferred total gives the rows.
            page=None, page_size=page_size,
            count=len(rows) if paging.deferred else paging.total, pks=pks, actions=actions,
            filters=filters, modelview_name=name, paging=paging, page_sizes=PAGE_SIZES,
            count_url=self._count_url() if paging.deferred else None, **kwargs)
        return widgets

    def _count_url(self) -> str:
        """This list's /count/ with the page's own arguments (filters, search, order)."""
        return with_query(url_for(f"{self.endpoint}.count"), request.args)

    def list_refusal(self) -> Optional[str]:
        """Why this request's search box cannot be searched (a list with the quick search),
        or None: /count/ answers 400 with it, as /list/ shows it (refuse_bad_search)."""
        from app.search_filters import QuickSearchFilter, quick_search_refusal

        if any(f[1] is QuickSearchFilter for f in self.base_filters or []):
            return quick_search_refusal()
        return None

    @expose("/count/")
    @has_access
    def count(self):
        """The total of the list with these arguments: the same filters, search and scope as
        /list/ (the page fetches it when it left its count out, app.paging). JSON: `total`
        (None beyond the cap), `more_than` and `text` as the page prints it."""
        if not isinstance(self.datamodel, KeysetInterface):
            abort(404)
        bad = self._bad_list_args()
        refusal = (gettext("Invalid list parameter: %(name)s", name=bad) if bad
                   else self.list_refusal())
        if refusal is not None:
            return jsonify(error=refusal), 400
        filters = self._filters  # this request's own (see _filters)
        get_filter_args(filters)
        query = self.datamodel.filtered(filters.get_joined_filters(self._base_filters))
        # Counted, never estimated: a page defers only a count its planner expected within
        # the cap (beyond, the page shows the estimate itself).
        total, more_than, _estimated = self.datamodel.capped_count(query)
        page = Page([], total, more_than)
        return jsonify(total=None if more_than else total, more_than=more_than,
                       text=page.total_text)

    @expose("/list/")
    @has_access
    def list(self):
        if self._bad_list_args():
            flash(gettext("Invalid list parameters: showing the default list"), "warning")
            return redirect(url_for(f"{self.endpoint}.list"))
        return super().list()

    @expose("/download/<string:filename>")
    @has_access
    def download(self, filename):
        abort(404)  # no file columns in Guishu; FAB's default reads UPLOAD_FOLDER

    def _scoped_get(self, pk):
        item = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if item is None:
            abort(404)
        return item

    @expose("/action/<string:name>/<pk>", methods=["POST"])
    def action(self, name, pk):
        refused = self._refuse_action(name)
        if refused is not None:
            return refused
        items, missing = self._scoped_rows([pk])
        if missing:
            return self.rows_out_of_scope(name, missing, 1)
        return self.actions[name].func(items[0])

    @expose("/action_post", methods=["POST"])
    def action_post(self):
        name = request.form.get("action", "")
        refused = self._refuse_action(name)
        if refused is not None:
            return refused
        pks = request.form.getlist("rowid")
        items, missing = self._scoped_rows(pks)
        if missing:
            return self.rows_out_of_scope(name, missing, len(pks))
        return self.actions[name].func(items)

    def _refuse_action(self, name):
        """None if the user may run action `name`; else the answer refusing it."""
        if name not in self.actions:
            abort(404)
        permission_name = self.get_action_permission_name(name)
        if not self.appbuilder.sm.has_access(permission_name, self.class_permission_name):
            flash(as_unicode(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        return None

    def _scoped_rows(self, pks) -> tuple[list, int]:
        """The rows of `pks` inside the scope, and how many of the ids are not."""
        items = [self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
                 for pk in pks]
        found = [item for item in items if item is not None]
        return found, len(items) - len(found)

    def rows_out_of_scope(self, name: str, missing: int, asked: int):
        """The answer to an action naming rows outside the scope (gone, or never visible):
        the whole request is refused. 404 here; a view whose rows leave its scope in normal
        use (the pool, as others claim) says so instead."""
        abort(404)

    # -- helpers for subclasses that save through a service --------------------------------
    def edit_widgets(self, form, item):
        """The edit page's widgets, with the related lists FAB's edit template expects."""
        widgets = self._get_edit_widget(form=form)
        return self._get_related_views_widgets(
            item, filters={}, orders=get_order_args(), pages=get_page_args(),
            page_sizes=get_page_size_args(), widgets=widgets)

    @staticmethod
    def actor():
        return signed_in_user()

    @staticmethod
    def show_error(form, exc: GuishuError) -> None:
        """Put field errors next to their inputs; anything else in a flash message."""
        if isinstance(exc, ValidationFailed):
            for field, message in exc.fields.items():
                target = form._fields.get(field) if form is not None else None
                if target is not None:
                    target.errors = list(target.errors or []) + [message]
                else:
                    flash(message, "danger")
        else:
            flash(exc.message, "danger")
