"""What a loader hands to the chunker: a document as a list of structural blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "text", "code", "row"]


@dataclass(frozen=True, kw_only=True)
class Block:
    """One structural piece of a document, in reading order."""

    text: str
    kind: BlockKind = "text"
    #: 1-based page for PDFs; None elsewhere
    page: int | None = None
    #: heading depth (1 = top) for headings; CSV header rows are level-1 headings
    level: int = 0


@dataclass(frozen=True, kw_only=True)
class LoadedDocument:
    """A parsed file: its blocks plus what the loader learned about it."""

    kind: str
    blocks: list[Block]
    n_pages: int = 0
    encoding: str = ""
    #: things the user should know that did not stop the ingest (e.g. empty PDF pages)
    notes: list[str] = field(default_factory=list)


def assemble(blocks: list[Block]) -> tuple[str, list[int]]:
    """Join blocks into the document's full text; return it and each block's start offset.

    Consecutive rows (CSV lines, JSON fields) are joined by one newline, everything else
    by a blank line, so the full text reads naturally when a passage is shown in context.
    """
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    previous: Block | None = None
    for block in blocks:
        if previous is not None:
            sep = "\n" if block.kind == "row" and previous.kind in ("row", "heading") else "\n\n"
            parts.append(sep)
            pos += len(sep)
        starts.append(pos)
        parts.append(block.text)
        pos += len(block.text)
        previous = block
    return "".join(parts), starts
