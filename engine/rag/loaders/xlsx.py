"""XLSX: each sheet is a heading, its first non-empty row the column heading under it, and
every other row a line of text. The only module importing openpyxl (read-only mode: rows are
streamed from the XML, never held as a whole workbook).
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Iterable

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .archive import check_zip, damaged, refuse_encrypted_office

#: rows walked over the whole workbook, blank ones included (openpyxl yields one per missing
#: row, so a single cell at row 1,000,000,000 would mean a billion steps); Excel's own limit
MAX_ROWS = 1_048_576
#: columns read per row; wider rows are cut (a cell at column XFD pads the row with blanks)
MAX_COLUMNS = 1_000


def load_xlsx(data: bytes, name: str, *, max_chars: int = 10_000_000) -> LoadedDocument:
    refuse_encrypted_office(data, name, fmt="XLSX", old=".xls")
    check_zip(data, name, fmt="XLSX").close()
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as e:  # noqa: BLE001 - openpyxl raises many types for damaged files
        raise damaged(name, "XLSX", e) from e
    try:
        blocks = _workbook_blocks(workbook, name, max_chars)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001
        raise damaged(name, "XLSX", e) from e
    finally:
        workbook.close()
    if not blocks:
        raise IngestError(f"{name}: the workbook has no values in any sheet.")
    return LoadedDocument(kind="xlsx", blocks=blocks, n_pages=len(workbook.sheetnames))


def _workbook_blocks(workbook, name: str, max_chars: int) -> list[Block]:
    blocks: list[Block] = []
    steps = chars = 0
    for sheet in workbook.worksheets:
        if not hasattr(sheet, "iter_rows"):  # a chart sheet: no cells
            continue
        sheet.reset_dimensions()  # the declared size is untrusted: read only the cells there are
        header_seen = False
        for row in sheet.iter_rows(values_only=True):
            steps += 1
            if steps > MAX_ROWS:
                raise IngestError(
                    f"{name}: refused, its sheets run past {MAX_ROWS:,} rows (Excel's own limit). "
                    "The file is damaged or built to exhaust readers; export the part you need as .csv."
                )
            line = _line(row)
            if not line:
                continue
            if not header_seen:
                blocks.append(Block(text=f"Sheet: {sheet.title}", kind="heading", level=1))
                blocks.append(Block(text=line, kind="heading", level=2))
                header_seen = True
            else:
                blocks.append(Block(text=line, kind="row"))
            chars += len(line)
            if chars > max_chars:  # stop at once: the rest could be far bigger
                from . import too_much_text

                raise too_much_text(name, max_chars)
    return blocks


def _line(row: Iterable[object]) -> str:
    cells = []
    for n, value in enumerate(row):
        if n >= MAX_COLUMNS:
            break
        cells.append(_cell(value))
    while cells and not cells[-1]:
        cells.pop()
    return " | ".join(cells) if any(cells) else ""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())
