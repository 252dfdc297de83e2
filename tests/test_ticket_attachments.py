"""Ticket attachments: the type allow-list by extension AND content, the size limit of the
service settings, clean file names, files kept under the instance folder, and served only
to those who may read the ticket (always as a download)."""
from __future__ import annotations

import io
import os
import zipfile

import pytest

from app.models import TicketAttachment
from app.services import service_admin, ticket_storage, tickets
from app.services.errors import OutOfScope, PermissionDenied, ValidationFailed
from tests.ticket_fixtures import NOW, build_desk

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"


def docx_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


@pytest.fixture
def ticket(db, org):
    desk = build_desk(db, org)
    t = tickets.create(org.staff, {"customer_id": org.c_rep.id, "channel": "phone",
                                   "subject": "屏幕碎了"}, now=NOW)
    tickets.assign(org.staff, t.id, agent_id=org.agent.id, team_id=desk.team.id)
    return t


@pytest.mark.parametrize("name,data,refusal", [
    ("virus.exe", b"MZ\x90\x00", "不接受 .exe 类型的文件；允许：png, jpg, jpeg, gif, webp, pdf, "
                                 "doc, xls, ppt, docx, xlsx, pptx, txt, csv, zip"),
    ("photo.png", b"MZ\x90\x00\x03", "文件内容不是 .png 文件"),
    ("report.pdf", PNG, "文件内容不是 .pdf 文件"),
    ("notes.txt", b"\x00\x01binary", "文件内容不是 .txt 文件"),
    ("report.docx", b"PK\x03\x04not a zip", "文件内容不是 .docx 文件"),
    ("README", b"hello", "文件名需要带扩展名"),
    ("empty.txt", b"", "文件为空"),
])
def test_types_are_checked_by_name_and_content(db, org, ticket, name, data, refusal):
    with pytest.raises(ValidationFailed) as exc:
        ticket_storage.add(org.agent, ticket.id, (name, data))
    assert exc.value.fields == {"file": refusal}


def test_the_size_limit_comes_from_the_settings(db, org, ticket):
    service_admin.settings().max_attachment_mb = 1
    db.session.commit()
    big = b"a" * (1024 * 1024 + 1)
    with pytest.raises(ValidationFailed) as exc:
        ticket_storage.add(org.agent, ticket.id, ("big.txt", big))
    assert exc.value.fields == {"file": "文件大小为 1.0 MB；最多 1 MB"}
    assert ticket_storage.add(org.agent, ticket.id, ("ok.txt", big[:-1])).size == 1024 * 1024


def test_accepted_files_are_kept_under_the_instance_folder(db, org, ticket):
    rows = [ticket_storage.add(org.agent, ticket.id, (name, data)) for name, data in (
        ("../../etc/passwd.png", PNG), ("报价单.pdf", PDF), ("合同.docx", docx_bytes()),
        ("清单.csv", "名称,数量\n打印机,3\n".encode("gb18030")),
        ('a<b>:"c|d?.txt', b"plain"))]
    assert [r.filename for r in rows] == ["passwd.png", "报价单.pdf", "合同.docx", "清单.csv",
                                          "a_b___c_d_.txt"]
    assert [r.content_type for r in rows][:2] == ["image/png", "application/pdf"]
    root = os.path.join(os.environ["GUISHU_INSTANCE_DIR"], "ticket_attachments")
    for r in rows:
        path = os.path.join(root, *r.storage_key.split("/"))
        assert os.path.isfile(path) and r.storage_key.startswith(f"{ticket.id}/")
    row, data = ticket_storage.open_attachment(org.rep, ticket.id, rows[1].id)  # the owner
    assert data == PDF and row.sha256 == __import__("hashlib").sha256(PDF).hexdigest()
    with pytest.raises(OutOfScope):
        ticket_storage.open_attachment(org.rep_north, ticket.id, rows[1].id)
    with pytest.raises(PermissionDenied):
        ticket_storage.add(org.auditor, ticket.id, ("a.txt", b"x"))
    assert ticket_storage.clean_filename("x" * 300 + ".pdf") == "x" * 196 + ".pdf"


def test_a_reply_carries_its_attachments(db, org, ticket):
    message = tickets.reply(org.agent, ticket.id, "见附件", attachments=[("图.png", PNG)])
    [row] = db.session.query(TicketAttachment).filter_by(ticket_id=ticket.id).all()
    assert (row.message_id, row.filename) == (message.id, "图.png")
    with pytest.raises(ValidationFailed):
        tickets.note(org.agent, ticket.id, "坏附件", attachments=[("x.exe", b"MZ")])
    assert db.session.query(TicketAttachment).filter_by(ticket_id=ticket.id).count() == 1


def test_upload_and_download_through_the_api(api, db, org, ticket):
    agent, rep, north = api("agent1"), api("rep1"), api("rep3")
    resp = agent("POST", f"/api/v1/tickets/{ticket.id}/attachments",
                 data={"file": (io.BytesIO(PDF), "报价单.pdf")},
                 content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    aid = resp.get_json()["id"]
    resp = agent("POST", f"/api/v1/tickets/{ticket.id}/attachments",
                 data={"file": (io.BytesIO(b"MZ"), "a.exe")}, content_type="multipart/form-data")
    assert resp.status_code == 400 and list(resp.get_json()["fields"]) == ["file"]
    resp = agent("POST", f"/api/v1/tickets/{ticket.id}/attachments", data={},
                 content_type="multipart/form-data")
    assert resp.get_json()["fields"] == {"file": "请选择文件"}
    got = rep("GET", f"/api/v1/tickets/{ticket.id}/attachments/{aid}")
    assert (got.status_code, got.data, got.mimetype) == (200, PDF, "application/octet-stream")
    assert got.headers["Content-Disposition"].startswith("attachment; filename*=UTF-8''")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert north("GET", f"/api/v1/tickets/{ticket.id}/attachments/{aid}").status_code == 404
    assert agent("GET", f"/api/v1/tickets/{ticket.id}/attachments/2147483647"
                 ).status_code == 404
    listed = rep("GET", f"/api/v1/tickets/{ticket.id}/attachments").get_json()
    assert [a["filename"] for a in listed["result"]] == ["报价单.pdf"]
