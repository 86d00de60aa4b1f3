"""DOCX: headings, paragraphs and tables in reading order. The only module importing docx.

A DOCX is a zip file, so it is checked for zip bombs before python-docx opens it.
"""

from __future__ import annotations

import io
import re

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .archive import check_zip, damaged, refuse_encrypted_office

_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título)\s*(\d)", re.IGNORECASE)


def load_docx(data: bytes, name: str) -> LoadedDocument:
    refuse_encrypted_office(data, name, fmt="DOCX", old=".doc")
    check_zip(data, name, fmt="DOCX").close()
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
        raise damaged(name, "DOCX", e) from e
    return LoadedDocument(kind="docx", blocks=blocks)


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
