"""One user picker for every form that names users: distribution targets, transfer receivers,
the departure handover, policy users, assignment-rule targets, pool members and the owner of
a new customer.

The options are rendered on the server once (templates/guishu/pickers.html), grouped by
department by app.services.org.picker_groups; static/guishu/pickers.js makes them a Select2
with search as you type and a "whole team" choice. The choices are exactly what each page's
eligibility query returns, and the server checks every submitted id again (the FAB fields
below refuse an id outside their query; the custom pages pass the ids to their service).
"""
from __future__ import annotations

from flask import get_template_attribute
from flask_appbuilder.fields import QuerySelectField

from app.extensions import db
from app.models import User
from app.services.org import picker_groups

PICKER_TEMPLATE = "guishu/pickers.html"


def user_picker(name: str, users, selected=(), multiple: bool = False, **kwargs):
    """The picker's markup for `users` (the eligible ones), for pages rendered in Python."""
    macro = get_template_attribute(PICKER_TEMPLATE, "picker_select")
    return macro(name, picker_groups(users), set(selected), multiple, **kwargs)


class UserPickerWidget:
    """WTForms widget: the user picker over a UserPickerField's choices."""

    def __call__(self, field, **kwargs):
        selected = {field.data.id} if field.data is not None else set()
        return user_picker(field.name, field.users(), selected, id=kwargs.get("id", field.id),
                           blank=field.blank_text, blank_value="__None")


class UserPickerField(QuerySelectField):
    """One user out of `query_func()` (FAB's QuerySelectField: an id outside the query is
    "Not a valid choice"), shown as the user picker."""

    widget = UserPickerWidget()

    def __init__(self, label=None, validators=None, query_func=None, **kwargs):
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("blank_text", "—")
        super().__init__(label, validators, query_func=query_func,
                         get_pk_func=lambda user: user.id, **kwargs)

    def users(self) -> list[User]:
        return [user for _pk, user in self._get_object_list()]


def all_users():
    """Every user: whom FAB offered on the configuration forms (a policy or a pool
    membership may name anyone; the services check the rest)."""
    return db.session.query(User).order_by(User.username)
