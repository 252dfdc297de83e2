"""How a care message leaves the building: e-mail over SMTP, SMS through a gateway.

The SMS gateway is pluggable: GUISHU_SMS_GATEWAY names a class ("package.module:Class") with
`send(phone, text) -> str` (the provider's message id), or is "http" for the built-in
gateway that POSTs JSON to GUISHU_SMS_URL (most providers, or an in-house SMS service, take
that shape); `make start` without a gateway writes SMS to a file (FileSmsGateway). Every failure is a DeliveryError whose text the outbox shows to admins.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import smtplib
import socket
import urllib.error
import urllib.request
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Optional, Protocol

from flask import current_app


class DeliveryError(Exception):
    """A message could not be delivered. `permanent` ones are not retried (a refused address
    stays refused)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class SmsGateway(Protocol):
    def send(self, phone: str, text: str) -> str:
        """Send `text` to an E.164 number; return the provider's id or raise DeliveryError."""


class HttpSmsGateway:
    """POST {"to": "+86…", "text": "…"} as JSON to a URL, with an optional bearer token."""

    def __init__(self, url: str, token: str = "", timeout: float = 10.0):
        if not url:
            raise DeliveryError("短信网关未配置地址（GUISHU_SMS_URL）", permanent=True)
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, phone: str, text: str) -> str:
        body = json.dumps({"to": phone, "text": text}, ensure_ascii=False).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                answer = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            # 4xx: the gateway refused this message (bad number, blocked text): do not retry.
            raise DeliveryError(f"短信网关拒绝：HTTP {exc.code}", permanent=400 <= exc.code < 500)
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            raise DeliveryError(f"短信网关不可达：{getattr(exc, 'reason', exc)}")
        try:
            return str(json.loads(answer).get("id", ""))
        except (ValueError, AttributeError):
            return ""


class FileSmsGateway:
    """Appends each SMS as one JSON line to a file (GUISHU_SMS_FILE): what `make start` uses
    when no gateway is configured, as its mail catcher does for e-mail, so the demo's SMS
    campaigns and care go somewhere one can read (instance/sms/outbox.jsonl)."""

    def __init__(self, path: str = ""):
        self.path = path or current_app.config.get("SMS_FILE", "") or os.path.join(
            current_app.instance_path, "sms", "outbox.jsonl")

    def send(self, phone: str, text: str) -> str:
        sent_id = uuid.uuid4().hex
        line = json.dumps({"id": sent_id, "to": phone, "text": text,
                           "at": dt.datetime.now(dt.timezone.utc).isoformat()},
                          ensure_ascii=False)
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            raise DeliveryError(f"短信网关 {self.path} 无法写入：{exc}")
        return sent_id


def sms_gateway() -> SmsGateway:
    name = current_app.config.get("SMS_GATEWAY", "")
    if not name:
        raise DeliveryError("未配置短信网关（设置 GUISHU_SMS_GATEWAY）", permanent=True)
    if name == "http":
        return HttpSmsGateway(current_app.config.get("SMS_URL", ""),
                              current_app.config.get("SMS_TOKEN", ""))
    module, _, cls = name.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except (ImportError, AttributeError, TypeError) as exc:
        raise DeliveryError(f"短信网关 {name} 无法加载：{exc}", permanent=True)


def send_sms(phone: str, text: str) -> str:
    return sms_gateway().send(phone, text)


def send_email(to: str, subject: str, body: str, html: Optional[str] = None) -> str:
    """Send a plain-text mail (with an HTML alternative when `html` is given) through the
    configured SMTP server; return its Message-ID."""
    conf = current_app.config
    host = conf.get("SMTP_HOST", "")
    if not host:
        raise DeliveryError("未配置邮件服务器（设置 GUISHU_SMTP_HOST）", permanent=True)
    sender = conf.get("MAIL_FROM") or "noreply@localhost"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or "localhost")
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    security: Optional[str] = conf.get("SMTP_SECURITY") or None
    port = int(conf.get("SMTP_PORT") or (465 if security == "ssl" else 25))
    try:
        cls = smtplib.SMTP_SSL if security == "ssl" else smtplib.SMTP
        with cls(host, port, timeout=float(conf.get("SMTP_TIMEOUT", 15))) as smtp:
            if security == "starttls":
                smtp.starttls()
            if conf.get("SMTP_USER"):
                smtp.login(conf["SMTP_USER"], conf.get("SMTP_PASSWORD", ""))
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        raise DeliveryError(f"邮件服务器拒收地址 {to}：{code} {_text(reason)}", permanent=True)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"邮件服务器登录失败：{exc.smtp_code}")
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"邮件服务器错误：{exc.smtp_code} {_text(exc.smtp_error)}",
                            permanent=500 <= exc.smtp_code < 600)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"邮件服务器不可达（{host}:{port}）：{exc}")
    return msg["Message-ID"]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
