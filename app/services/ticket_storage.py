"""Ticket attachments: a small storage interface (put / get / delete by key) with a filesystem
implementation under the instance folder, and the rules a file must pass — the size limit of
the service settings and an allow-list of types checked by the file name's extension AND by
the content's first bytes (a renamed executable is not a PDF). File names are cleaned (no
path, no control characters, bounded); files are served only to those who may read the
ticket (app.services.tickets.get_ticket), always as a download.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import uuid
import zipfile
from io import BytesIO
from typing import Any, Optional, Protocol

from sqlalchemy import select

from app.extensions import db
from app.models import ServiceSettings, Ticket, TicketAttachment, User
from app.models.customer import utcnow
from app.services import audit
from app.services.errors import N_, NotFound, PermissionDenied, ValidationFailed, tr

FILENAME_MAX = 200  # the filename column
DEFAULT_MAX_MB = 10  # ServiceSettings.max_attachment_mb before anyone set it
NO_SUCH_ATTACHMENT = N_("The attachment does not exist")  # msgid

# extension -> (content type, the sniffed kind the content must be)
ALLOWED = {
    "png": ("image/png", "png"), "jpg": ("image/jpeg", "jpeg"),
    "jpeg": ("image/jpeg", "jpeg"), "gif": ("image/gif", "gif"),
    "webp": ("image/webp", "webp"), "pdf": ("application/pdf", "pdf"),
    "doc": ("application/msword", "ole"), "xls": ("application/vnd.ms-excel", "ole"),
    "ppt": ("application/vnd.ms-powerpoint", "ole"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "ooxml"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "ooxml"),
    "pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation",
             "ooxml"),
    "txt": ("text/plain", "text"), "csv": ("text/csv", "text"),
    "zip": ("application/zip", "zip"),
}
_MAGIC = (("png", b"\x89PNG\r\n\x1a\n"), ("jpeg", b"\xff\xd8\xff"), ("gif", b"GIF87a"),
          ("gif", b"GIF89a"), ("pdf", b"%PDF-"), ("ole", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
          ("zip", b"PK\x03\x04"), ("zip", b"PK\x05\x06"))
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


# --- storage --------------------------------------------------------------------------------
class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


_KEY = re.compile(r"^[0-9]+/[0-9a-f]{32}$")


class FileStorage:
    """Files under `root`, one per key ("<ticket id>/<uuid>"): keys are ours, never a
    user's file name, so no path leaves the root."""

    def __init__(self, root: str):
        self.root = root

    def _path(self, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        return os.path.join(self.root, *key.split("/"))

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = path + ".part"
        with open(partial, "wb") as out:
            out.write(data)
        os.replace(partial, path)  # never a half-written file under its key

    def get(self, key: str) -> bytes:
        with open(self._path(key), "rb") as src:
            return src.read()

    def delete(self, key: str) -> None:
        try:
            os.remove(self._path(key))
        except FileNotFoundError:
            pass


def instance_dir() -> str:
    """The instance folder (GUISHU_INSTANCE_DIR, else config.INSTANCE_DIR)."""
    from config import INSTANCE_DIR

    return os.environ.get("GUISHU_INSTANCE_DIR") or str(INSTANCE_DIR)


def storage() -> Storage:
    return FileStorage(os.path.join(instance_dir(), "ticket_attachments"))


# --- the rules ------------------------------------------------------------------------------
def max_bytes() -> tuple[int, int]:
    """(the limit in MB, in bytes) from the service settings."""
    mb = db.session.execute(select(ServiceSettings.max_attachment_mb)).scalars().first()
    mb = mb or DEFAULT_MAX_MB
    return mb, mb * 1024 * 1024


def clean_filename(raw: Any) -> str:
    """The file name without any path, control or reserved characters, at most
    FILENAME_MAX characters with its extension kept."""
    name = unicodedata.normalize("NFC", raw if isinstance(raw, str) else "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cs", "Co", "Cn"))
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:20] if dot else ""
        name = (stem if dot else name)[:FILENAME_MAX - len(ext) - 1] + (f".{ext}" if ext else "")
    return name


def extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def sniff(data: bytes) -> Optional[str]:
    """The kind the content's first bytes say (png, jpeg, gif, webp, pdf, ole, ooxml, zip,
    text), or None."""
    for kind, magic in _MAGIC:
        if data.startswith(magic):
            if kind == "zip" and _is_ooxml(data):
                return "ooxml"
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if b"\x00" not in data[:8192]:
        for encoding in ("utf-8", "gb18030"):
            try:
                data.decode(encoding)
                return "text"
            except UnicodeDecodeError:
                continue
    return None


def _is_ooxml(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            return "[Content_Types].xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def check(filename: Any, data: bytes) -> tuple[str, str]:
    """(the clean file name, its content type) when the file may be kept; ValidationFailed
    naming `file` otherwise (size, type by name, type by content)."""
    name = clean_filename(filename)
    ext = extension(name)
    limit_mb, limit = max_bytes()
    if not name or not ext:
        raise ValidationFailed({"file": tr("The file needs a name with an extension")})
    if ext not in ALLOWED:
        raise ValidationFailed({"file": tr(
            "Files of type .%(ext)s are not accepted; allowed: %(allowed)s", ext=ext,
            allowed=", ".join(ALLOWED))})
    if len(data) > limit:
        raise ValidationFailed({"file": tr(
            "The file is %(size)s MB; at most %(limit)s MB", size=f"{len(data) / 1048576:.1f}",
            limit=limit_mb)})
    if not data:
        raise ValidationFailed({"file": tr("The file is empty")})
    content_type, kind = ALLOWED[ext]
    found = sniff(data)
    # A docx is a zip; a zip named .zip may hold anything (it is never opened here).
    if found != kind and not (kind == "zip" and found == "ooxml"):
        raise ValidationFailed({"file": tr(
            "The content of the file is not a .%(ext)s file", ext=ext)})
    return name, content_type


# --- attachments ----------------------------------------------------------------------------
def _read(upload: Any) -> tuple[Any, bytes]:
    """(file name, bytes) of an upload: a (name, bytes) pair or a werkzeug FileStorage,
    read at most one byte past the limit."""
    _mb, limit = max_bytes()
    if isinstance(upload, tuple) and len(upload) == 2:
        name, data = upload
        return name, bytes(data)
    if hasattr(upload, "read"):
        return getattr(upload, "filename", ""), upload.read(limit + 1)
    raise ValidationFailed({"file": tr("Please choose a file")})


def attach(actor: Optional[User], ticket: Ticket, upload: Any,
           message_id: Optional[int] = None) -> TicketAttachment:
    """Keep the file and its row (in the caller's transaction: the caller commits); the
    ticket's history and the audit trail say so."""
    from app.services.tickets import add_event

    name, data = _read(upload)
    name, content_type = check(name, data)
    key = f"{ticket.id}/{uuid.uuid4().hex}"
    storage().put(key, data)
    row = TicketAttachment(ticket_id=ticket.id, message_id=message_id, filename=name,
                           content_type=content_type, size=len(data),
                           sha256=hashlib.sha256(data).hexdigest(), storage_key=key,
                           uploaded_by_id=actor.id if actor else None, created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    add_event(ticket, "attachment", actor.id if actor else None, to_value=name)
    audit.record(actor.id if actor else None, "attach", "ticket", ticket.id,
                 {"attachment": (None, name), "size": (None, len(data))})
    return row


def add(actor: User, ticket_id: Any, upload: Any) -> TicketAttachment:
    """An attachment on the ticket itself (not on a message): those who may add notes."""
    from app.services import tickets

    if not tickets.raises_tickets(actor):
        raise PermissionDenied(tr("Your role cannot work tickets"))
    ticket = tickets.get_ticket(actor, ticket_id)
    try:
        row = attach(actor, ticket, upload)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return row


def attachments_of(ticket: Ticket) -> list[TicketAttachment]:
    return list(db.session.execute(select(TicketAttachment).where(
        TicketAttachment.ticket_id == ticket.id).order_by(TicketAttachment.id)).scalars())


def open_attachment(actor: Optional[User], ticket_id: Any,
                    attachment_id: Any) -> tuple[TicketAttachment, bytes]:
    """The attachment and its bytes, for a reader of the ticket only (404 otherwise, and
    for an attachment of another ticket)."""
    from app.services import tickets
    from app.services.ids import parse_pk

    ticket = tickets.get_ticket(actor, ticket_id)
    pk = parse_pk(attachment_id)
    row = db.session.get(TicketAttachment, pk) if pk is not None else None
    if row is None or row.ticket_id != ticket.id:
        raise NotFound(tr(NO_SUCH_ATTACHMENT))
    try:
        data = storage().get(row.storage_key)
    except FileNotFoundError:
        raise NotFound(tr(NO_SUCH_ATTACHMENT)) from None
    return row, data
