"""Markdown read by a CommonMark parser (markdown-it-py, the only module importing it).

ATX and setext headings become headings, fenced and indented code stay whole code blocks,
lists and tables are kept line by line, and YAML front matter is kept as a block of its own,
so the chunker can split a note by its sections and cite the heading path of each chunk.
Only the block structure is parsed (inline parsing is switched off): the text of every block
is its source lines as written, so a citation points at exactly what the file says.
"""

from __future__ import annotations

import re

from ..blocks import Block, BlockKind, LoadedDocument
from .text import decode_text, paragraphs

#: nesting past this is read as text; deep nesting is how hostile Markdown burns time
MAX_NESTING = 20
#: the parser is pure Python, tens of times slower than splitting paragraphs (bench/bench_loaders.py):
#: a longer text (a log or a dump named .md, not notes) is read as plain paragraphs instead
MAX_PARSED_CHARS = 2_000_000
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?:.*\n){0,200}?(?:---|\.\.\.)[ \t]*(?:\n|\Z)")
#: top-level token -> what its source lines become (None: dropped)
_KINDS: dict[str, BlockKind | None] = {
    "paragraph_open": "text",
    "blockquote_open": "text",
    "html_block": "text",
    "fence": "code",
    "code_block": "code",
    "bullet_list_open": "row",
    "ordered_list_open": "row",
    "table_open": "row",
    "hr": None,
}


def load_markdown(data: bytes, name: str) -> LoadedDocument:
    text, encoding = decode_text(data, name)
    if len(text) <= MAX_PARSED_CHARS:
        return LoadedDocument(kind="markdown", blocks=markdown_blocks(text), encoding=encoding)
    doc = LoadedDocument(
        kind="markdown", blocks=[Block(text=p.strip("\n")) for p in paragraphs(text)], encoding=encoding
    )
    doc.notes.append(
        f"over {MAX_PARSED_CHARS:,} characters: read as plain paragraphs, without Markdown structure"
    )
    return doc


def markdown_blocks(text: str) -> list[Block]:
    """The blocks of a Markdown text, in reading order."""
    from markdown_it import MarkdownIt

    lines = text.split("\n")
    blocks: list[Block] = []
    front = _FRONT_MATTER.match(text)
    if front:
        skipped = front.group(0).count("\n") or len(lines)
        blocks.append(Block(text=front.group(0).strip("\n"), kind="code"))
        lines = [""] * skipped + lines[skipped:]  # blank, not removed: token line numbers still match
    parser = MarkdownIt("commonmark", {"maxNesting": MAX_NESTING}).enable("table").disable("inline")
    tokens = parser.parse("\n".join(lines))
    for i, token in enumerate(tokens):
        if token.level != 0 or token.nesting < 0 or token.map is None:
            continue
        if token.type == "heading_open":
            title = " ".join(tokens[i + 1].content.split()) if i + 1 < len(tokens) else ""
            if title:
                level = int(token.tag[1:])
                blocks.append(Block(text=f"{'#' * level} {title}", kind="heading", level=level))
            continue
        kind = _KINDS.get(token.type, "text")
        body = "\n".join(lines[token.map[0] : token.map[1]]).strip("\n")
        if kind is not None and body.strip():
            blocks.append(Block(text=body, kind=kind))
    return blocks
