"""Normalised keys for contact fields, stored beside the raw values and indexed.

Bump NORMALIZER_VERSION whenever a rule here changes: the `refresh_normalised_keys` job then
rewrites the stored keys of every row written by an older version.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Optional

import phonenumbers
from email_validator import EmailNotValidError, validate_email

NORMALIZER_VERSION = 1

_EXT_RE = re.compile(r"(?:转|分机|ext\.?|x|#)\s*(\d{1,6})\s*$", re.IGNORECASE)


class InvalidValue(ValueError):
    """A value that cannot be normalised; the message is shown to the user."""


def fold_width(text: str) -> str:
    """Full-width digits, letters and punctuation to half-width (NFKC), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def normalize_phone(raw: Optional[str], region: str = "CN") -> Optional[str]:
    """E.164 (+8613800138000), with ';ext=NNN' kept for extensions; None for empty input."""
    if raw is None or not raw.strip():
        return None
    text = fold_width(raw)
    ext = None
    m = _EXT_RE.search(text)
    if m:
        ext, text = m.group(1), text[: m.start()]
    text = text.strip().rstrip("-").strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidValue(f"无法识别的电话号码：{raw}")
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(f"无效的电话号码：{raw}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    ext = ext or number.extension
    return f"{e164};ext={ext}" if ext else e164


def normalize_mobile(raw: Optional[str], region: str = "CN") -> Optional[str]:
    """Like normalize_phone, but the number must be a mobile number."""
    e164 = normalize_phone(raw, region)
    if e164 is None:
        return None
    number = phonenumbers.parse(e164.split(";")[0], None)
    kind = phonenumbers.number_type(number)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE,
                    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidValue(f"不是手机号码：{raw}")
    return e164


def normalize_email(raw: Optional[str]) -> Optional[str]:
    """Trimmed and lower-cased, after a syntax check (no DNS look-up)."""
    if raw is None or not raw.strip():
        return None
    text = fold_width(raw)
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidValue(f"无效的邮箱地址：{raw}")
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
