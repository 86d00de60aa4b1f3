"""HTML: the page's content only, with headings, preformatted code and table rows kept as structure.

The only module importing bs4. Scripts, styles, templates and hidden elements are dropped, and
so is the page's chrome: where the page marks its content (``<main>``, ``role="main"``, one
``<article>``) only that is kept, and navigation, search, banners and page footers go in any
case. Documentation sites repeat their sidebar, breadcrumbs and "Report a bug" links on every
page: indexed as text, those near-empty chunks carried the page's title in their heading path
and outranked real answers (on Python's HTML docs, 14 % of the chunks, and a navigation chunk
in the top 5 for 12 of 60 questions). Permalink marks (Sphinx's "¶") are dropped too.

A data table becomes one line per row (``cell | cell``), as the DOCX and ODT loaders write
them, so a value stays beside its name; a table used for layout (long cells, nested tables)
is read as text.
"""

from __future__ import annotations

import re

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .text import decode_text

_INVISIBLE = ["script", "style", "noscript", "template", "head", "svg", "iframe", "object", "embed", "canvas"]
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = {
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
}
#: roles of page chrome (ARIA landmarks that are not content)
_CHROME_ROLES = {"navigation", "search", "banner", "contentinfo"}
#: tags that are chrome unless they sit inside the content (an article's own header keeps its title)
_PAGE_PARTS = ["header", "footer", "aside"]
#: the marked content must hold at least this share of the page's text to be trusted alone
_MAIN_SHARE = 0.25
#: a table whose cells are longer than this (or that holds a table) lays out a page: read as text
_CELL_CHARS = 400
_PERMALINK_CLASSES = {"headerlink", "anchor", "anchorjs-link", "heading-anchor"}
# private-use markers cannot come from the page: any in the input are removed first
_HEAD, _CODE, _END, _ROW = "\ue000", "\ue001", "\ue002", "\ue003"
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


def html_blocks(text: str, *, web_page: bool = True) -> tuple[list[Block], str]:
    """The visible blocks of an HTML (or XHTML) text, and its <title>. ``web_page`` drops the
    page's chrome; an e-book's chapter has none (its ``<aside>`` is a footnote, not a sidebar)."""
    text = text.translate({ord(_HEAD): None, ord(_CODE): None, ord(_END): None, ord(_ROW): None})
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
    if web_page:
        _drop_chrome(soup)
    for table in soup.find_all("table"):
        if table.parent is not None and _is_data_table(table):  # (a decomposed table has no parent)
            _mark_rows(table)
    return _blocks(_marked_text(soup)), title


def _marked_text(soup) -> str:
    """The text of ``soup``, with structure marks around code, headings and blocks, in one walk
    that changes nothing in the tree: marks inserted as nodes (as this did before) cost a walk of
    the tag's whole subtree each, so broken pages whose unclosed divs nest ever deeper took
    quadratic time (52 s for 1 MB, and 2 MB ran into the parse limit)."""
    from bs4 import CData, NavigableString, Tag

    out: list[str] = []
    stack: list[tuple[object, str]] = [(soup, "")]  # (node, or None and the mark that closes a tag)
    while stack:
        node, closing = stack.pop()
        if node is None:
            out.append(closing)
        elif type(node) in (NavigableString, CData):  # what get_text reads: no comments, doctypes
            out.append(str(node))
        elif isinstance(node, Tag):
            opening, closing = _marks(node.name)
            out.append(opening)
            if closing:
                stack.append((None, closing))
            stack.extend((child, "") for child in reversed(node.contents))
    return "".join(out)


def _marks(name: str) -> tuple[str, str]:
    if name == "br":
        return "\n", ""
    if name == "pre":
        return f"\n\n{_CODE}", f"{_END}\n\n"
    if name in _HEADINGS:
        return f"\n\n{_HEAD}{name[1]}", "\n\n"
    if name in _BLOCKS:
        return "\n\n", "\n\n"
    return "", ""


def _drop_chrome(soup) -> None:
    """Keep only the page's marked content when there is some, and drop its chrome."""
    for tag in soup.find_all(_is_chrome):
        tag.decompose()
    for tag in soup.find_all(_PAGE_PARTS):
        if tag.parent is None or tag.find_parent(["main", "article"]) is not None:
            continue
        if tag.name != "header" or tag.find("h1") is None:  # a header with the h1 is the title's
            tag.decompose()
    for tag in soup.find_all("a"):
        if tag.parent is not None and _is_permalink(tag):
            tag.decompose()
    content = _content(soup)
    if content:
        body = soup.body or soup
        for child in list(body.children):
            child.extract()
        for part in content:
            body.append(part)


def _content(soup) -> list:
    """The elements that hold the page's content: ``<main>`` / ``role="main"``, else a lone
    ``<article>``; none (keep the page) when they hold too little of its text to be all of it."""
    marked = soup.find_all(lambda t: t.name == "main" or t.get("role") == "main")
    if not marked:
        articles = soup.find_all("article")
        marked = articles if len(articles) == 1 else []
    outer = [t for t in marked if not any(o is not t and t in o.descendants for o in marked)]
    page = len((soup.body or soup).get_text(" ", strip=True))
    kept = sum(len(t.get_text(" ", strip=True)) for t in outer)
    return outer if outer and kept >= _MAIN_SHARE * page else []


def _is_chrome(tag) -> bool:
    return tag.name == "nav" or str((getattr(tag, "attrs", None) or {}).get("role", "")) in _CHROME_ROLES


def _is_permalink(tag) -> bool:
    classes = set(tag.get("class") or ())
    text = tag.get_text(strip=True)
    return bool(classes & _PERMALINK_CLASSES) and len(text) <= 2 or text in ("¶", "§")


def _is_data_table(table) -> bool:
    if table.find("table") is not None:
        return False
    cells = table.find_all(["td", "th"])
    return bool(cells) and all(len(c.get_text(" ", strip=True)) <= _CELL_CHARS for c in cells)


def _mark_rows(table) -> None:
    """Each row as its own paragraph, ``cell | cell``, marked for a row block."""
    lines = []
    for row in table.find_all("tr"):
        cells = [" ".join(c.get_text(" ", strip=True).split()) for c in row.find_all(["td", "th"])]
        if any(cells):
            lines.append(f"\n\n{_ROW}" + " | ".join(cells) + "\n\n")
    caption = table.find("caption")
    title = f"\n\n{' '.join(caption.get_text(' ', strip=True).split())}\n\n" if caption else ""
    table.replace_with(title + "".join(lines))


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
            elif para.startswith(_ROW):
                blocks.append(Block(text=para[1:].strip(), kind="row"))
            else:
                blocks.append(Block(text=para.replace(_HEAD, "").replace(_ROW, "")))
    return blocks
