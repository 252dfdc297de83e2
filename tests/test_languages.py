"""Every page a role can open, in Chinese and in English, shows no string of the other language.

The pages are found, not listed: every GET route without arguments (lists, add forms, custom
pages), then the first link of each other kind (show, edit, a pool, a transfer…) found on those
pages. New pages are checked as soon as they are registered.

What counts as "the other language":
- on an English page, any Chinese text that is not data. Data (customer, department, user and
  pool names…) is every string value in the database; a visible text from which all data has
  been removed must hold no CJK character. That catches hard-coded Chinese too.
- on a Chinese page, a visible text that is exactly an English msgid the catalogues (ours and
  Flask-AppBuilder's zh) translate differently.
Visible text is the text of elements (not <script>/<style>) plus placeholder, title and the
value of buttons; data is never tested against the catalogue.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import String, Text, select

ROLES = ("admin", "manager", "rep", "staff", "auditor", "marketing")
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")
ROOT = Path(__file__).resolve().parent.parent
# Not pages: downloads, sign-out, the language switch itself, machine answers.
SKIP_PREFIXES = ("/api/", "/static/", "/appbuilder/", "/logout", "/lang/", "/swagger",
                 "/favicon")
SKIP_ENDPOINT_WORDS = ("export", "download", "csv", "xlsx", "api", "logout")
# Not data but proper names every UI shows as they are: the language menu, the product's
# name (APP_NAME), the Chinese holidays greeted by care (names from the calendar) and the
# place names of the region pickers.
PROPER_NAMES = {"中文", "English"}


def _catalogue_pairs() -> list[tuple[str, str]]:
    import flask_appbuilder

    files = [ROOT / "app/translations/zh/LC_MESSAGES/messages.po",
             Path(flask_appbuilder.__file__).parent / "translations/zh/LC_MESSAGES/messages.po"]
    pairs = []
    for path in files:
        with path.open("rb") as fh:
            catalogue = read_po(fh)
        for message in catalogue:
            if not message.id or message.fuzzy:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strs = message.string if isinstance(message.string, tuple) else (message.string,)
            for msgid, msgstr in zip(ids, strs):
                if msgstr and msgstr != msgid:
                    pairs.append((msgid, msgstr))
    return pairs


PAIRS = _catalogue_pairs()
# English msgids the Chinese page must not show (placeholders make them templates: skip).
ENGLISH = {i for i, _ in PAIRS if "%(" not in i and "%s" not in i and len(i) >= 2
           and re.search(r"[A-Za-z]{2}", i)}


class VisibleText(HTMLParser):
    """Text a user reads: element text outside <script>/<style>, and a few attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._hidden += 1
        attrs = dict(attrs)
        for name in ("placeholder", "title", "alt"):
            if attrs.get(name):
                self.texts.append(attrs[name])
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.texts.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self.texts.append(data)


def visible_texts(html: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    return [" ".join(t.split()) for t in parser.texts]


def data_strings(db, cjk: bool = True) -> list[str]:
    """Every string value stored in the database holding CJK (else: holding none), longest
    first (so they strip whole)."""
    from flask_appbuilder import Model

    found = set()
    for table in Model.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
        if not columns:
            continue
        for row in db.session.execute(select(*columns)):
            for value in row:
                if isinstance(value, str) and bool(CJK.search(value)) == cjk:
                    found.add(value)
                    if cjk:
                        found.update(v for v in re.split(r"[\s,，、/]+", value) if CJK.search(v))
    if not cjk:
        return sorted(found, key=len, reverse=True)
    from flask import current_app

    from app.services import care

    found.update(care.known_holidays())
    # China's provinces and cities: place names a segment's region pickers offer.
    from app.services.region_names import CITIES, PROVINCES

    found.update(PROVINCES)
    found.update(CITIES)
    found.add(current_app.config["APP_NAME"])
    found.update(PROPER_NAMES)
    return sorted(found, key=len, reverse=True)


def chinese_left(text: str, data: list[str]) -> str:
    for value in data:
        if value in text:
            text = text.replace(value, " ")
    return text if CJK.search(text) else ""


# Three English words in a row: a sentence no catalogue translates (yet).
PHRASE = re.compile(r"\b[A-Za-z][a-z]+(?:[ ,/-]+[A-Za-z]?[a-z]+){2,}\b")


def english_left(text: str, data: list[str]) -> str:
    stripped = text.strip().rstrip(":：").strip()
    if stripped in ENGLISH:
        return stripped
    for value in data:
        if value in text:
            text = text.replace(value, " ")
    m = PHRASE.search(text)
    return m.group(0) if m else ""


# --- pages -----------------------------------------------------------------------------------
def _page_rules(app):
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.arguments:
            continue
        if rule.rule.startswith(SKIP_PREFIXES) or rule.rule == "/login/":
            continue
        if any(w in rule.endpoint.lower() for w in SKIP_ENDPOINT_WORDS):
            continue
        yield rule.rule


_HREF = re.compile(r'href="(/[^"#?]*/\d+[^"#]*)"')


def _with_args(app, paths_seen: dict[str, str]) -> dict[str, str]:
    """The first link per endpoint with arguments, from pages already rendered."""
    adapter = app.url_map.bind("localhost")
    out = {}
    for html in paths_seen.values():
        for href in _HREF.findall(html):
            path = urlsplit(href).path
            if path.startswith(SKIP_PREFIXES):
                continue
            try:
                endpoint, _args = adapter.match(path, method="GET")
            except Exception:
                continue
            # Pages only: no delete, no FAB action (a GET runs it), no language switch.
            if any(w in endpoint.lower() for w in SKIP_ENDPOINT_WORDS + ("delete", "action", "lang")):
                continue
            out.setdefault(endpoint, href)
    return out


def _get(client, path, locale):
    with client.session_transaction() as session:
        session["locale"] = locale
    resp = client.get(path)
    if resp.status_code != 200 or "text/html" not in resp.content_type:
        return None
    return resp.get_data(as_text=True)


def _pages(app, client, locale):
    seen = {}
    for path in _page_rules(app):
        html = _get(client, path, locale)
        if html is not None:
            seen[path] = html
    for href in _with_args(app, seen).values():
        html = _get(client, href, locale)
        if html is not None:
            seen[href] = html
    return seen


def _some_of_everything(org) -> None:
    """A row of the kinds the bare organisation lacks, so their lists show labels too."""
    from app.services import deals, followups, transfers

    followups.log_followup(org.rep, org.c_rep.id, {"channel": "visit", "content": "上门演示"})
    deals.record_deal(org.rep2, org.c_rep2.id, {"amount": "5000"})
    transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "customer_request")
    _some_marketing(org)


def _some_marketing(org) -> None:
    """A segment of both kinds, a launched SMS campaign with its outbox, an opt-out of each
    source: the marketing pages' labels (record types, message statuses, opt-out sources)."""
    from app.extensions import db
    from app.services import campaign_sending, campaigns
    from app.services.marketing_segments import create_segment

    segment = create_segment(org.marketing, {"name": "全部客户和线索", "record_type": "both"})
    campaign = campaigns.create(org.marketing, {"name": "春季短信", "kind": "sms",
                                                "segment_id": segment.id})
    campaign_sending.set_templates(campaign.id, org.marketing, email_subject="", email_body="",
                                   sms_body="{name}您好")
    campaigns.launch(campaign.id, org.marketing)
    for channel, address, source in (("sms", "+8613700137000", "sms_reply"),
                                     ("email", "optout-link@example.com", "link"),
                                     ("email", "optout-api@example.com", "api"),
                                     ("email", "optout-staff@example.com", "manual")):
        campaign_sending.record_optout(channel, address, source)
    db.session.commit()


@pytest.mark.parametrize("role", ROLES)
def test_every_page_in_one_language(app, db, org, clients, role):
    _some_of_everything(org)
    client = getattr(clients, role)
    data = data_strings(db)
    ascii_data = data_strings(db, cjk=False)
    problems = []
    zh_pages = _pages(app, client, "zh")
    assert len(zh_pages) >= 5, sorted(zh_pages)
    for path, html in zh_pages.items():
        for text in visible_texts(html):
            left = english_left(text, ascii_data)
            if left:
                problems.append(f"zh {path}: {left!r}")
    en_pages = {path: _get(client, path, "en") for path in zh_pages}
    for path, html in en_pages.items():
        assert html is not None, path
        for text in visible_texts(html):
            left = chinese_left(text, data)
            if left:
                problems.append(f"en {path}: {left!r}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_scripts_carry_no_ui_text():
    """The scripts take their words from the page (rendered through the catalogue)."""
    for script in sorted((ROOT / "app/static/guishu").glob("*.js")):
        chinese = [line for line in script.read_text().splitlines() if CJK.search(line)]
        assert not chinese, f"{script.name}: {chinese}"


def test_every_view_title_is_translated(app):
    """FAB makes up a missing title in English ("Add Department"): every view names its own."""
    from flask_appbuilder.baseviews import BaseCRUDView
    from flask_babel.speaklater import LazyString

    from app.extensions import appbuilder

    made_up = []
    for view in appbuilder.baseviews:
        if not isinstance(view, BaseCRUDView):
            continue
        for attr in ("list_title", "add_title", "edit_title", "show_title"):
            if not isinstance(getattr(view, attr), LazyString):
                made_up.append(f"{type(view).__name__}.{attr} = {getattr(view, attr)!r}")
    assert not made_up, "\n".join(made_up)


def test_every_marketing_label_is_translated(app):
    """The marketing models' value labels (record types, statuses, sources…) shown on the
    市场 pages: each has a Chinese entry (a page test alone can miss a short label)."""
    from flask_babel import force_locale

    from app.models import marketing, survey

    labels = [label for module in (marketing, survey) for name, value in vars(module).items()
              if name.isupper() and isinstance(value, dict)
              for label in value.values() if hasattr(label, "_args")]
    assert len(labels) >= 30
    with app.test_request_context(), force_locale("zh"):
        missing = [label._args[0] for label in labels if not CJK.search(str(label))]
    assert not missing, missing
