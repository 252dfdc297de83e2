"""The care channels against real loopback servers: a mail goes out over SMTP with its
Message-ID, an SMS through a pluggable class or the HTTP gateway; every failure is a
DeliveryError with the text the outbox shows, permanent when retrying cannot help."""
from __future__ import annotations

import pytest

from app.services import care_channels
from app.services.care_channels import DeliveryError, HttpSmsGateway
from tests.care_fixtures import SENT_SMS, SmsEndpoint, SmtpServer, free_port


@pytest.fixture
def config(app, monkeypatch):
    """Set app config for one test, inside an app context; no channel configured at start."""
    for key in ("SMTP_HOST", "SMTP_USER", "SMTP_SECURITY", "SMS_GATEWAY", "SMS_URL",
                "SMS_TOKEN"):
        monkeypatch.setitem(app.config, key, "")
    with app.app_context():
        yield lambda key, value: monkeypatch.setitem(app.config, key, value)


def _refusal(call) -> tuple[str, bool]:
    with pytest.raises(DeliveryError) as err:
        call()
    return str(err.value), err.value.permanent


def test_a_mail_goes_out_with_its_message_id(config):
    config("SMTP_HOST", "127.0.0.1")
    config("MAIL_FROM", "关怀 <care@guishu.example>")
    with SmtpServer() as server:
        config("SMTP_PORT", server.port)
        message_id = care_channels.send_email("wang@example.com", "生日快乐", "王芳您好")
    (mail,) = server.inbox.messages
    assert server.inbox.recipients == [["wang@example.com"]]
    assert (mail["To"], mail["Subject"], mail.get_content().strip()) == (
        "wang@example.com", "生日快乐", "王芳您好")
    assert mail["Message-ID"] == message_id and message_id.endswith("@guishu.example>")


def test_mail_refusals_say_why_and_whether_to_retry(config):
    assert _refusal(lambda: care_channels.send_email("a@b.cn", "s", "b")) == (
        "未配置邮件服务器（设置 GUISHU_SMTP_HOST）", True)
    config("SMTP_HOST", "127.0.0.1")
    with SmtpServer(refuse=True) as server:
        config("SMTP_PORT", server.port)
        assert _refusal(lambda: care_channels.send_email("a@b.cn", "s", "b")) == (
            "邮件服务器拒收地址 a@b.cn：550 5.1.1 mailbox unavailable", True)
    port = free_port()  # nothing listens there: retried later
    config("SMTP_PORT", port)
    text, permanent = _refusal(lambda: care_channels.send_email("a@b.cn", "s", "b"))
    assert text.startswith(f"邮件服务器不可达（127.0.0.1:{port}）：") and permanent is False


def test_sms_through_a_gateway_class_named_in_the_config(config):
    config("SMS_GATEWAY", "tests.care_fixtures:RecordingGateway")
    SENT_SMS.clear()
    assert care_channels.send_sms("+8613700137000", "生日快乐") == "sms-1"
    assert SENT_SMS == [("+8613700137000", "生日快乐")]


def test_the_file_gateway_appends_one_json_line_per_sms(config, tmp_path):
    """`make start` without a gateway: SMS land in a file one can read, one line each."""
    import json

    path = tmp_path / "sms" / "outbox.jsonl"
    config("SMS_GATEWAY", "app.services.care_channels:FileSmsGateway")
    config("SMS_FILE", str(path))
    first = care_channels.send_sms("+8613700137000", "生日快乐 回复TD退订")
    second = care_channels.send_sms("+8613800138000", "节日快乐")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(x["id"], x["to"], x["text"]) for x in lines] == [
        (first, "+8613700137000", "生日快乐 回复TD退订"), (second, "+8613800138000", "节日快乐")]
    assert first != second
    config("SMS_FILE", str(tmp_path))  # a directory: cannot be appended to, retried later
    text, permanent = _refusal(lambda: care_channels.send_sms("+8613700137000", "x"))
    assert text.startswith(f"短信网关 {tmp_path} 无法写入：") and permanent is False


def test_sms_gateway_configuration_errors_are_permanent(config):
    assert _refusal(care_channels.sms_gateway) == ("未配置短信网关（设置 GUISHU_SMS_GATEWAY）",
                                                   True)
    config("SMS_GATEWAY", "http")
    assert _refusal(care_channels.sms_gateway) == ("短信网关未配置地址（GUISHU_SMS_URL）", True)
    config("SMS_GATEWAY", "tests.care_fixtures:NoSuchGateway")
    text, permanent = _refusal(care_channels.sms_gateway)
    assert text.startswith("短信网关 tests.care_fixtures:NoSuchGateway 无法加载：") and permanent


def test_the_http_gateway_posts_json_with_the_token(config):
    config("SMS_GATEWAY", "http")
    config("SMS_TOKEN", "t0k")
    with SmsEndpoint() as endpoint:
        config("SMS_URL", endpoint.url)
        assert care_channels.send_sms("+8613700137000", "王芳您好") == "gw-1"
    assert endpoint.received == [({"to": "+8613700137000", "text": "王芳您好"}, "Bearer t0k")]
    with SmsEndpoint() as endpoint:
        assert HttpSmsGateway(endpoint.url).send("+8613700137000", "x") == "gw-1"
    assert endpoint.received == [({"to": "+8613700137000", "text": "x"}, None)]


@pytest.mark.parametrize("status, permanent", [(400, True), (404, True), (503, False)])
def test_a_gateway_refusal_is_permanent_only_for_4xx(config, status, permanent):
    with SmsEndpoint(status=status) as endpoint:
        assert _refusal(lambda: HttpSmsGateway(endpoint.url).send("+8613700137000", "x")) == (
            f"短信网关拒绝：HTTP {status}", permanent)


def test_an_unreachable_gateway_is_retried(config):
    gateway = HttpSmsGateway(f"http://127.0.0.1:{free_port()}/sms", timeout=2)
    text, permanent = _refusal(lambda: gateway.send("+8613700137000", "x"))
    assert text.startswith("短信网关不可达：") and permanent is False
