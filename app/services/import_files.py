"""Reading the files back-office staff import: CSV as Excel in China writes it (UTF-8, UTF-8
with BOM, or GBK) and XLSX. Rows come out with their file line numbers, so every report can
say "第 N 行"; a line that cannot be decoded is reported, not guessed at.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from app.services.errors import tr

# GB18030 is a superset of GBK (and of GB2312): any file Excel saves as "CSV" in Chinese
# Windows decodes with it.
XLSX_MAGIC = b"PK\x03\x04"


class UnreadableFile(ValueError):
    """The file as a whole cannot be imported (wrong format, no header row)."""


@dataclass(frozen=True)
class BadLine:
    """A row that could not be decoded in the file's encoding."""
    reason: str


Row = Union[list, BadLine]


def detect_format(filename: str, head: bytes) -> str:
    if head.startswith(XLSX_MAGIC):
        return "xlsx"
    suffix = Path(filename or "").suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        raise UnreadableFile(tr("The file name ends in .xlsx but it is not an Excel workbook"))
    if suffix == ".xls":
        raise UnreadableFile(tr("Old .xls files are not supported; save it as .xlsx or CSV in "
                                 "Excel"))
    if b"\x00" in head[:4096]:
        raise UnreadableFile(tr("Unrecognised file format: upload a CSV (UTF-8 or GBK) or XLSX "
                             "file"))
    return "csv"


def detect_encoding(data: bytes) -> str:
    """utf-8-sig for a BOM; UTF-8 when most lines with non-ASCII bytes decode as UTF-8 (a
    few lines pasted from elsewhere are then reported one by one), else GB18030. UTF-8 goes
    first because Chinese UTF-8 often also "decodes" as GB18030, into nonsense."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    wide = [line for line in data.split(b"\n") if not line.isascii()]
    failing = sum(1 for line in wide if not _decodes(line, "utf-8"))
    return "utf-8" if failing * 2 <= len(wide) else "gb18030"


def _decodes(line: bytes, encoding: str) -> bool:
    try:
        line.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _csv_records(data: bytes, encoding: str) -> Iterator[tuple[int, Row]]:
    """(first line of the record, cells or BadLine). A record spanning a line that does not
    decode is one BadLine; the other records are read as usual."""
    body = data[3:] if encoding == "utf-8-sig" else data
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    bad: set[int] = set()
    text_lines = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        try:
            text_lines.append(raw.decode(codec))
        except UnicodeDecodeError:
            bad.add(number)
            text_lines.append("")
    reader = csv.reader(io.StringIO("\n".join(text_lines), newline=""))
    previous_end = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start, previous_end = previous_end + 1, reader.line_num
            yield start, BadLine(tr("CSV format error: %(error)s", error=exc))
            continue
        start, end = previous_end + 1, reader.line_num
        previous_end = end
        if any(n in bad for n in range(start, end + 1)):
            name = "UTF-8" if codec == "utf-8" else "GBK"
            yield start, BadLine(tr("Encoding error: this line is not %(codec)s text and cannot be "
                                    "read", codec=name))
        elif cells and any(c.strip() for c in cells):
            yield start, [c.strip() for c in cells]


def _cell(value) -> str:
    """An XLSX cell as the text a user typed: 13800138000.0 -> "13800138000", dates ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def _xlsx_records(path: Path) -> Iterator[tuple[int, Row]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException
    from zipfile import BadZipFile

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, KeyError, OSError) as exc:
        raise UnreadableFile(tr("Cannot open the Excel file: %(error)s", error=exc))
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell(v) for v in values]
            if any(cells):
                yield number, cells
    finally:
        book.close()


@dataclass
class Source:
    file_format: str
    encoding: Optional[str]
    header_line: int
    headers: list[str]
    records: Iterator[tuple[int, Row]]   # the data rows, after the header


def open_source(path: Path, file_format: str, encoding: Optional[str] = None) -> Source:
    """The header row (the first non-empty row) and an iterator over the data rows."""
    if file_format == "xlsx":
        records = _xlsx_records(path)
    else:
        data = path.read_bytes()
        encoding = encoding or detect_encoding(data)
        records = _csv_records(data, encoding)
    for line, row in records:
        if isinstance(row, BadLine):
            raise UnreadableFile(tr("Line %(line)s (the header) cannot be read: %(reason)s",
                                    line=line, reason=row.reason))
        headers = _unique_headers(row)
        return Source(file_format, encoding, line, headers, records)
    raise UnreadableFile(tr("The file is empty: no header line"))


def _unique_headers(cells: list[str]) -> list[str]:
    """Header texts, blanks named 列N and repeats numbered, so each names one column."""
    out, seen = [], {}
    for i, cell in enumerate(cells, start=1):
        name = cell.strip() or f"列{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}（{seen[name]}）"
        else:
            seen[name] = 1
        out.append(name)
    return out
