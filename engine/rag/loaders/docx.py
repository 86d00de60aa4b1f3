"""DOCX: headings, paragraphs and tables in reading order. The only module importing docx.

A DOCX is a zip file, so it is checked for zip bombs before python-docx opens it.
"""

from __future__ import annotations

import io
import re
import zipfile

from ...errors import IngestError
from ..blocks import Block, LoadedDocument

#: a real DOCX unpacks to a few times its size; refuse archives that claim far more
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_RATIO = 100
MAX_MEMBERS = 10_000
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título)\s*(\d)", re.IGNORECASE)


def load_docx(data: bytes, name: str) -> LoadedDocument:
    if data.startswith(_OLE_MAGIC):
        raise IngestError(
            f"{name}: this is an old binary Word file (.doc) or a password-protected DOCX. "
            "Open it in Word or LibreOffice, save as an unprotected .docx and add it again."
        )
    check_zip(data, name)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[Block] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                blocks.extend(_table_rows(item))
            else:
                block = _paragraph(item)
                if block is not None:
                    blocks.append(block)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - python-docx raises many types for damaged files
        raise IngestError(
            f"{name}: the DOCX is damaged and cannot be read ({type(e).__name__}: {e}). "
            "Re-save it from your word processor and try again."
        ) from e
    return LoadedDocument(kind="docx", blocks=blocks)


def check_zip(data: bytes, name: str) -> None:
    """Refuse archives that are not zips or that would unpack to far more than they weigh.

    zipfile never inflates a member past its declared size, so checking the declared
    sizes is enough to bound memory.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise IngestError(
            f"{name}: not a valid DOCX (it is not a zip archive: {e}). Re-save it as .docx and try again."
        ) from e
    unpacked = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if len(members) > MAX_MEMBERS or unpacked > MAX_UNPACKED_BYTES or unpacked / packed > MAX_RATIO:
        raise IngestError(
            f"{name}: refused, this archive would unpack to {unpacked / 2**20:,.0f} MB from "
            f"{len(data) / 2**20:,.1f} MB (a zip bomb?). Real documents never do that."
        )


def _paragraph(paragraph) -> Block | None:
    text = paragraph.text.strip()
    if not text:
        return None
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style.lower() == "title":
        return Block(text=text, kind="heading", level=1)
    if m := _HEADING_STYLE.match(style):
        return Block(text=text, kind="heading", level=max(1, int(m.group(1))))
    return Block(text=text)


def _table_rows(table) -> list[Block]:
    rows: list[Block] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # merged cells repeat their text
                cells.append(text)
        if any(cells):
            rows.append(Block(text=" | ".join(cells), kind="row"))
    return rows
