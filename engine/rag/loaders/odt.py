"""ODT (OpenDocument text): headings with their outline level, paragraphs, lists and tables,
read straight from the archive's content.xml. The only module importing lxml; its parser runs
with entities, DTDs and the network off and its depth and size limits on.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .archive import check_zip, read_member, safe_xml

_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
#: generated from the headings (repeats them) or not part of the reading text
_SKIP = {
    f"{_TEXT}{name}"
    for name in ("table-of-content", "tracked-changes", "note-citation", "alphabetical-index", "bibliography")
} | {f"{_OFFICE}annotation"}


def load_odt(data: bytes, name: str) -> LoadedDocument:
    with check_zip(data, name, fmt="ODT") as archive:
        manifest = read_member(archive, "META-INF/manifest.xml", name, fmt="ODT")
        if b"encryption-data" in manifest:
            raise IngestError(
                f"{name}: the ODT is password-protected. Open it in LibreOffice, save it without "
                "a password and add it again."
            )
        content = read_member(archive, "content.xml", name, fmt="ODT")
    root = safe_xml(content, name, fmt="ODT")
    body = root.find(f"{_OFFICE}body/{_OFFICE}text")
    if body is None:
        raise IngestError(f"{name}: not an OpenDocument text (no text body; a spreadsheet or drawing?).")
    blocks = list(_blocks(body))
    if not blocks:
        raise IngestError(f"{name}: the document has no text.")
    return LoadedDocument(kind="odt", blocks=blocks)


def _blocks(element) -> Iterator[Block]:
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIP:
            continue  # comments and processing instructions have no string tag
        if tag == f"{_TEXT}h":
            text = " ".join(_text(child).split())
            if text:
                yield Block(text=text, kind="heading", level=_level(child))
        elif tag == f"{_TEXT}p":
            text = _text(child).strip()
            if text:
                yield Block(text=text)
        elif tag == f"{_TABLE}table":
            yield from _rows(child)
        else:  # lists, list items, sections, frames: their paragraphs, in order
            yield from _blocks(child)


def _level(heading) -> int:
    try:
        return max(1, min(6, int(heading.get(f"{_TEXT}outline-level", "1"))))
    except ValueError:
        return 1


def _rows(table) -> Iterator[Block]:
    for row in table.iter(f"{_TABLE}table-row"):
        cells = [" ".join(_text(cell).split()) for cell in row if cell.tag == f"{_TABLE}table-cell"]
        while cells and not cells[-1]:
            cells.pop()
        if any(cells):
            yield Block(text=" | ".join(cells), kind="row")


def _text(element) -> str:
    """The visible text: spaces, tabs and line breaks as written; note citations left out."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == f"{_TEXT}s":
            parts.append(" " * min(_count(child), 100))
        elif tag == f"{_TEXT}tab":
            parts.append("\t")
        elif tag == f"{_TEXT}line-break":
            parts.append("\n")
        elif tag and tag not in _SKIP:
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _count(space) -> int:
    try:
        return int(space.get(f"{_TEXT}c", "1"))
    except ValueError:
        return 1
