"""PDF: text per page. The only module importing pypdf."""

from __future__ import annotations

import io
import re

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .text import paragraphs

_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")


def load_pdf(data: bytes, name: str, *, max_pages: int = 2000, max_chars: int = 10_000_000) -> LoadedDocument:
    if b"%PDF" not in data[:1024]:
        raise IngestError(f"{name}: not a PDF file (no %PDF header). If it is another format, rename it.")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        _unlock(reader, name)
        pages = list(reader.pages)
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError) as e:
        raise IngestError(
            f"{name}: the PDF is damaged and cannot be read ({type(e).__name__}: {e}). "
            "Re-save or re-export it and try again."
        ) from e
    if len(pages) > max_pages:
        raise IngestError(
            f"{name}: refused, too many pages: {len(pages):,}, over the limit of {max_pages:,}. "
            "Split the PDF, or raise the limit (--max-pages)."
        )
    blocks, empty, broken = _read_pages(pages, name, max_chars)
    if not blocks and broken:  # not a scan: its pages' contents would not parse
        raise IngestError(
            f"{name}: the text of its pages cannot be read ({next(iter(broken.values()))}); the PDF "
            "is damaged, or built to exhaust a reader. Re-save or re-export it and try again."
        )
    if not blocks:
        raise IngestError(
            f"{name}: no text could be extracted from its {len(pages)} page(s); it may be "
            "scanned images. Run it through OCR first (for example ocrmypdf)."
        )
    doc = LoadedDocument(kind="pdf", blocks=blocks, n_pages=len(pages))
    if empty:
        doc.notes.append(f"no text on page(s) {_ranges(empty)} (images only?)")
    if broken:
        doc.notes.append(f"page(s) {_ranges(sorted(broken))} could not be read (damaged)")
    return doc


def _read_pages(pages: list, name: str, max_chars: int) -> tuple[list[Block], list[int], dict[int, str]]:
    """The pages' text blocks, the pages without text, and the pages whose text could not be
    read (with why)."""
    blocks: list[Block] = []
    empty: list[int] = []
    broken: dict[int, str] = {}
    chars = 0
    for number, page in enumerate(pages, start=1):
        text = _page_text(page, number, broken)
        chars += len(text)
        if chars > max_chars:  # stop reading at once: the rest could be far bigger
            from . import too_much_text

            raise too_much_text(name, max_chars)
        page_blocks = [Block(text=p, page=number) for p in _page_paragraphs(text)]
        if not page_blocks and number not in broken:
            empty.append(number)
        blocks.extend(page_blocks)
    return blocks, empty, broken


def _unlock(reader, name: str) -> None:
    """Open PDFs encrypted with an empty user password (common); refuse real passwords."""
    if not reader.is_encrypted:
        return
    from pypdf import PasswordType
    from pypdf.errors import DependencyError

    try:
        unlocked = reader.decrypt("") != PasswordType.NOT_DECRYPTED
    except DependencyError as e:
        raise IngestError(
            f"{name}: encrypted with a method that needs the 'cryptography' package "
            "(pip install cryptography)."
        ) from e
    if not unlocked:
        raise IngestError(
            f"{name}: the PDF is password-protected. Remove the password "
            "(print or export it to a new PDF) and add it again."
        )


def _page_text(page, number: int, broken: dict[int, str]) -> str:
    try:
        text = page.extract_text() or ""
    except Exception as e:  # noqa: BLE001 - one bad page must not lose the others; each is reported
        broken[number] = f"{type(e).__name__}: {str(e)[:120]}"
        return ""
    return _HYPHEN_BREAK.sub(r"\1\2", text.replace("\r\n", "\n").replace("\x00", ""))


def _page_paragraphs(text: str) -> list[str]:
    """Lines inside a paragraph are layout, not meaning: join them with spaces."""
    return [" ".join(line.strip() for line in p.split("\n") if line.strip()) for p in paragraphs(text)]


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)
