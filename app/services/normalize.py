"""Normalised keys (查重键) for phones, e-mail, company and person names and addresses, stored
beside the raw values and indexed.

Bump NORMALIZER_VERSION whenever a rule here changes: the `refresh_normalised_keys` job then
rewrites the stored keys of every row written by an older version.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from app.services.errors import tr
from app.services.region_names import CITIES, PROVINCES

# 2: company names (region / core / legal form), addresses and person names' pinyin.
# 3: pinyin for person names only (no rule matches companies by pinyin, and it was a third
#    of a bulk import's time).
# 4: country words (中国, 中华, China) are not regions: dropped from company names and
#    addresses instead of standing in for the city.
NORMALIZER_VERSION = 4

_EXT_RE = re.compile(r"(?:转|分机|ext\.?|x|#)\s*(\d{1,6})\s*$", re.IGNORECASE)


class InvalidValue(ValueError):
    """A value that cannot be normalised; the message is shown to the user."""


def fold_width(text: str) -> str:
    """Full-width digits, letters and punctuation to half-width (NFKC), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


# A Chinese mobile written plainly (13800138000, +86 138-0013-8000): what most rows of an
# import hold. Built directly instead of by phonenumbers.parse, which costs 60 µs; the
# number object is the same, and validity is still phonenumbers' to decide.
_PLAIN_CN_MOBILE = re.compile(r"(?:\+86)?(1\d{10})")
_SEPARATORS = re.compile(r"[\s\-()]")


def _parse_valid(raw: str, region: str) -> tuple[phonenumbers.PhoneNumber, Optional[str]]:
    """The parsed, valid number and its extension; InvalidValue otherwise."""
    text = fold_width(raw)
    ext = None
    m = _EXT_RE.search(text)
    if m:
        ext, text = m.group(1), text[: m.start()]
    text = text.strip().rstrip("-").strip()
    plain = _PLAIN_CN_MOBILE.fullmatch(_SEPARATORS.sub("", text)) if region == "CN" else None
    if plain:
        number = phonenumbers.PhoneNumber(country_code=86, national_number=int(plain.group(1)))
    else:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            raise InvalidValue(tr("Unrecognised phone number: %(raw)s", raw=raw))
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(tr("Invalid phone number: %(raw)s", raw=raw))
    return number, ext or number.extension


def _e164(number: phonenumbers.PhoneNumber, ext: Optional[str]) -> str:
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"{e164};ext={ext}" if ext else e164


def normalize_phone(raw: Optional[str], region: str = "CN") -> Optional[str]:
    """E.164 (+8613800138000), with ';ext=NNN' kept for extensions; None for empty input."""
    if raw is None or not raw.strip():
        return None
    return _e164(*_parse_valid(raw, region))


def normalize_mobile(raw: Optional[str], region: str = "CN") -> Optional[str]:
    """Like normalize_phone, but the number must be a mobile number."""
    if raw is None or not raw.strip():
        return None
    number, ext = _parse_valid(raw, region)
    kind = phonenumbers.number_type(number)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE,
                    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidValue(tr("Not a mobile number: %(raw)s", raw=raw))
    return _e164(number, ext)


def normalize_email(raw: Optional[str]) -> Optional[str]:
    """Trimmed and lower-cased, after a syntax check (no DNS look-up)."""
    if raw is None or not raw.strip():
        return None
    text = fold_width(raw)
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidValue(tr("Invalid e-mail address: %(raw)s", raw=raw))
    return text.lower()


def mask_phone(value: Optional[str]) -> str:
    """138****8000: keep the first three and last four digits."""
    if not value:
        return ""
    digits = re.sub(r"\D", "", value)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_email(value: Optional[str]) -> str:
    """z***@qq.com"""
    if not value or "@" not in value:
        return ""
    local, domain = value.split("@", 1)
    return f"{local[:1]}***@{domain}"


# --- Chinese text ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional characters folded to simplified (OpenCC, character and phrase tables)."""
    return _t2s().convert(text)


_BRACKETS = str.maketrans({"【": "(", "】": ")", "〔": "(", "〕": ")", "[": "(", "]": ")",
                           "{": "(", "}": ")", "〈": "(", "〉": ")", "《": "(", "》": ")",
                           "「": "(", "」": ")"})
_DOTS = str.maketrans({"•": "·", "・": "·", "．": "·", "‧": "·", "∙": "·"})
_NOT_WORD = re.compile(r"[^0-9a-z\u4e00-\u9fff()·]+")


def fold_text(text: str) -> str:
    """Width folded (NFKC), simplified, lower-cased, brackets unified to ( ), whitespace and
    punctuation other than brackets and the name dot removed."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).lower()
    return _NOT_WORD.sub("", text.translate(_BRACKETS).translate(_DOTS))


# --- regions ----------------------------------------------------------------------------------
_ETHNIC = ("朝鲜族", "布依族", "苗族", "藏族", "回族", "柯尔克孜", "蒙古族", "蒙古", "彝族",
           "哈尼族", "傣族", "白族", "景颇族", "傈僳族", "土家族", "羌族", "壮族", "侗族", "哈萨克",
           "维吾尔", "黎族", "畲族", "瑶族", "纳西族")
_MARKERS = ("特别行政区", "自治区", "自治州", "地区", "省", "市", "盟")


def _short(name: str) -> str:
    """广东省 -> 广东, 广西壮族自治区 -> 广西, 延边朝鲜族自治州 -> 延边, 深圳市 -> 深圳."""
    for marker in _MARKERS:
        if name.endswith(marker) and len(name) > len(marker) + 1:
            name = name[: -len(marker)]
            break
    changed = True
    while changed:
        changed = False
        for people in _ETHNIC:
            if name.endswith(people) and len(name) > len(people) + 1:
                name, changed = name[: -len(people)], True
    return name


@lru_cache(maxsize=1)
def _regions() -> tuple[dict[str, str], list[str], frozenset[str]]:
    """({spelling: short name}, spellings longest first, short names that are provinces
    only): full and short names of provinces and cities, plus the special administrative
    regions."""
    names: dict[str, str] = {}
    extra = ("香港特别行政区", "澳门特别行政区", "台湾省")  # not in the +86 area codes
    for full in PROVINCES + CITIES + extra:
        short = _short(full)
        names[full] = short
        # Bare short names only for provinces and cities (市): those of prefectures (地区,
        # 自治州, 盟) are words too often (阿里巴巴 is not 阿里地区).
        if len(short) >= 2 and full.endswith(("省", "市", "自治区", "特别行政区")):
            names.setdefault(short, short)
    provinces_only = frozenset(_short(p) for p in PROVINCES + extra) - {
        _short(c) for c in CITIES}
    return names, sorted(names, key=len, reverse=True), provinces_only


@lru_cache(maxsize=1)
def _spellings_by_first_char() -> dict[str, list[str]]:
    """The region spellings grouped by their first character, longest first: a name is
    compared with the few spellings that can start it, not all of them (a bulk import
    normalises 100,000 names)."""
    out: dict[str, list[str]] = {}
    for spelling in _regions()[1]:
        out.setdefault(spelling[0], []).append(spelling)
    return out


def _leading_spellings(text: str) -> list[str]:
    return _spellings_by_first_char().get(text[:1], []) if text else []


def region_of(text: str) -> Optional[str]:
    """The short region name if `text` is exactly a region (北京市 -> 北京), else None."""
    return _regions()[0].get(text)


# What is left after a region must still name someone: 中山大学 is not 中山 + 大学.
_GENERIC = {"大学", "学院", "中学", "小学", "医院", "银行", "公司", "集团", "酒店", "宾馆", "商场",
            "超市", "饭店", "大厦", "广场", "电视台", "日报", "晚报", "机场", "车站", "港务"}


# Country words name no place a customer is in: 翔维（中国）技术有限公司 in 佛山 is 翔维技术 in
# 佛山, so the word is dropped, never taken as the region (which stands in for the city).
# Only names of the country: 国际 or 亚太 in a name are part of the name.
_COUNTRIES = frozenset({"中国", "中华", "中华人民共和国", "china", "prc"})
# Written before a name they are dropped too (中国平安保险 = 平安保险), but only these: 中华
# leads real names (中华书局).
_LEADING_COUNTRIES = ("中华人民共和国", "中国")


def _strip_leading_country(text: str, min_left: int) -> str:
    for word in _LEADING_COUNTRIES:
        rest = text[len(word):]
        if text.startswith(word) and len(rest) >= min_left and rest not in _GENERIC:
            return rest
    return text


def _strip_leading_region(text: str, min_left: int) -> tuple[Optional[str], str]:
    names = _regions()[0]
    for spelling in _leading_spellings(text):
        rest = text[len(spelling):]
        if text.startswith(spelling) and len(rest) >= min_left and rest not in _GENERIC:
            return names[spelling], rest
    return None, text


# --- company names ------------------------------------------------------------------------
_LEGAL_FORMS = sorted([
    "股份有限公司", "有限责任公司", "有限公司", "股份公司", "集团公司", "集团", "控股", "总公司",
    "公司", "有限合伙", "普通合伙", "合伙企业", "个人独资企业", "个体工商户",
    "co.,ltd.", "co.,ltd", "co.ltd.", "co.ltd", "coltd", "company", "limited", "ltd.", "ltd",
    "inc.", "inc", "corporation", "corp.", "corp", "llc", "gmbh", "co.", "co"], key=len,
    reverse=True)


@dataclass(frozen=True)
class CompanyName:
    region: Optional[str]  # 北京 for 北京百度网讯科技有限公司 or 百度网讯科技（北京）有限公司
    core: str              # 百度网讯科技: what duplicates are matched on
    legal_form: str        # 有限公司, 集团股份有限公司, …


def split_company_name(raw: Optional[str]) -> Optional[CompanyName]:
    if raw is None or not raw.strip():
        return None
    # Latin names keep their word breaks until the legal form is found ("co., ltd").
    text = to_simplified(unicodedata.normalize("NFKC", raw)).lower().translate(_BRACKETS)
    text = re.sub(r"\s+", "", text) if re.search(r"[\u4e00-\u9fff]", text) else \
        re.sub(r"\s+", " ", text).strip()
    region = None
    forms: list[str] = []
    bracketed: list[str] = []

    def bracket(m: re.Match) -> str:
        nonlocal region
        inner = _NOT_WORD.sub("", m.group(1))
        if inner in _COUNTRIES:
            return ""
        if region_of(inner):
            region = region or region_of(inner)
            return ""
        if inner in _LEGAL_FORMS:
            bracketed.append(inner)  # 平安保险（集团）股份有限公司
            return ""
        return inner

    text = re.sub(r"\(([^()]*)\)", bracket, text)
    stripped = True
    while stripped:
        stripped = False
        bare = text.rstrip(" .,")
        for form in _LEGAL_FORMS:
            if bare.endswith(form) and len(bare) > len(form):
                forms.insert(0, form)
                text, stripped = bare[: -len(form)].rstrip(" ,"), True
                break
    core = _strip_leading_country(_NOT_WORD.sub("", text).replace("(", "").replace(")", ""), 2)
    while True:
        found, rest = _strip_leading_region(core, 2)
        if found is None:
            break
        region, core = found, rest  # 广东省深圳市…: the most specific (the city) is kept
    legal = _NOT_WORD.sub("", "".join(bracketed + forms)).replace("(", "").replace(")", "")
    return CompanyName(region=region, core=core, legal_form=legal)


# --- addresses and person names -----------------------------------------------------------
_BUILDING = re.compile(r"(\d+)(?:号楼|幢|座)")


def normalize_address(raw: Optional[str]) -> Optional[str]:
    """广东省深圳市南山区科技园路１号３号楼 -> 深圳南山区科技园路1号3栋: the province dropped
    (the city names it), city markers dropped, digits half-width, building words unified."""
    if raw is None or not raw.strip():
        return None
    text = _strip_leading_country(fold_text(raw).replace("(", "").replace(")", ""), 1)
    names, _, provinces_only = _regions()
    out = []
    for _ in range(2):  # province, then city
        for spelling in _leading_spellings(text):
            if text.startswith(spelling) and len(text) > len(spelling):
                text = text[len(spelling):]
                if names[spelling] not in provinces_only:  # a province is implied by its city
                    out.append(names[spelling])
                break
    return "".join(out) + _BUILDING.sub(r"\1栋", text)


def normalize_person_name(raw: Optional[str]) -> Optional[str]:
    """张 三 / 張三 / ＺＨＡＮＧ San -> 张三 / 张三 / zhang san (Latin names keep one space)."""
    if raw is None or not raw.strip():
        return None
    text = to_simplified(unicodedata.normalize("NFKC", raw)).translate(_DOTS).strip().lower()
    if re.search(r"[\u4e00-\u9fff]", text):
        return re.sub(r"[\s.\-_]+", "", text)
    return re.sub(r"\s+", " ", re.sub(r"[^a-z\s'-]", " ", text)).strip()


def name_pinyin(raw: Optional[str]) -> Optional[str]:
    """zhangsan for 张三 and for "Zhang San": the key that matches a name across scripts."""
    name = normalize_person_name(raw)
    if not name:
        return None
    from pypinyin import lazy_pinyin

    return re.sub(r"[^a-z]", "", "".join(lazy_pinyin(name)))
