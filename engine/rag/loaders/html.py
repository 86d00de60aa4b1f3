"""HTML: the visible text only, with headings and preformatted code kept as structure.

The only module importing bs4. Scripts, styles, templates and hidden elements are dropped.
"""

from __future__ import annotations

import re

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .text import decode_text

_INVISIBLE = ["script", "style", "noscript", "template", "head", "svg", "iframe", "object", "embed", "canvas"]
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_BLOCKS = [
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "section",
    "article",
    "blockquote",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "dd",
    "dt",
    "figcaption",
    "caption",
    "form",
    "hr",
    "title",
]
# private-use markers cannot come from the page: any in the input are removed first
_HEAD, _CODE, _END = "\ue000", "\ue001", "\ue002"
_BREAK = re.compile(r"\n[ \t\u00a0]*\n\s*")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def load_html(data: bytes, name: str) -> LoadedDocument:
    text, encoding = decode_text(data, name)
    blocks, title = html_blocks(text)
    if title and not any(b.kind == "heading" for b in blocks[:1]):
        blocks.insert(0, Block(text=title, kind="heading", level=1))
    if not blocks:
        raise IngestError(f"{name}: the page has no visible text (only scripts, styles or markup).")
    return LoadedDocument(kind="html", blocks=blocks, encoding=encoding)


def html_blocks(text: str) -> tuple[list[Block], str]:
    """The visible blocks of an HTML (or XHTML) text, and its <title>."""
    text = text.translate({ord(_HEAD): None, ord(_CODE): None, ord(_END): None})
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(text, "lxml")
    except Exception:  # noqa: BLE001 - lxml missing or choking: the stdlib parser is slower but total
        soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_INVISIBLE):
        tag.decompose()
    for tag in soup.find_all(_is_hidden):
        tag.decompose()
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    for tag in soup.find_all("pre"):
        tag.insert_before(f"\n\n{_CODE}")
        tag.insert_after(f"{_END}\n\n")
    for tag in soup.find_all(_HEADINGS):
        tag.insert_before(f"\n\n{_HEAD}{tag.name[1]}")
        tag.insert_after("\n\n")
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    return _blocks(soup.get_text()), title


def _is_hidden(tag) -> bool:
    attrs = getattr(tag, "attrs", None) or {}
    return (
        "hidden" in attrs
        or attrs.get("aria-hidden") == "true"
        or bool(_HIDDEN_STYLE.search(str(attrs.get("style", ""))))
    )


def _blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    # code first: its line breaks are meaning, everything else's are layout
    for i, part in enumerate(re.split(f"{_CODE}|{_END}", text)):
        if i % 2 == 1:
            if part.strip():
                blocks.append(Block(text=part.strip("\n"), kind="code"))
            continue
        for para in _BREAK.split(part):
            para = " ".join(para.split())
            if not para:
                continue
            if para.startswith(_HEAD):
                body = para[2:].strip()
                if body:
                    blocks.append(Block(text=body, kind="heading", level=int(para[1])))
            else:
                blocks.append(Block(text=para.replace(_HEAD, "")))
    return blocks
