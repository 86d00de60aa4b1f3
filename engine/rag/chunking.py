"""Structure-aware chunking under a token budget.

A chunk never crosses a heading or a PDF page; paragraphs, code blocks and rows are
kept whole when they fit and packed together up to the budget; a paragraph too big is
split at sentences (code and rows at lines), then at words. Each chunk is an exact
span ``[start, end)`` of the document's full text, plus the headings above it (for a
CSV, its header row), which are embedded with it so a passage keeps its context, and its
section (those headings and the one it starts with), which citations show.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from .blocks import Block, assemble

CountTokens = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])")
_LINE = re.compile(r"[^\n]+")
_WORD = re.compile(r"\S+")
#: no real tokenizer packs more characters than this into a token on average, so longer
#: text is over budget without counting (counting a 50 MB line would take a while)
_MAX_CHARS_PER_TOKEN = 30
#: control characters (tab and newline aside) are dropped from documents: printed by the CLI,
#: an escape sequence in a file could retitle the terminal or write the clipboard
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True, kw_only=True)
class ChunkSpec:
    text: str
    heading: str
    page: int | None
    start: int
    end: int
    n_tokens: int
    #: the heading path the chunk lies in, its own leading heading included (for citations;
    #: ``heading`` leaves that one out, since the chunk's text already holds it)
    section: str = ""


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    page: int | None
    heading: str
    #: a heading or a new page: the chunk must start here
    hard_break: bool
    section: str
    #: part of a heading block
    is_heading: bool = False
    #: the first unit of a new page
    new_page: bool = False


def chunk_blocks(
    blocks: list[Block], *, count_tokens: CountTokens, max_tokens: int = 200, overlap_tokens: int = 30
) -> tuple[str, list[ChunkSpec]]:
    """Return the document's full text and its chunks, in order."""
    if max_tokens < 16:
        raise ValueError("max_tokens must be at least 16")
    blocks = [dataclasses.replace(b, text=_CONTROL.sub("", b.text)) for b in blocks]
    text, starts = assemble(blocks)

    def count(piece: str) -> int:
        # an embedder's tokenizer makes one unknown token of a word it cannot split (a DNA
        # sequence, a hex dump): 120,000-character chunks counted 200 tokens, too big for any prompt
        return max(count_tokens(piece), len(piece) // _MAX_CHARS_PER_TOKEN)

    units = _units(text, blocks, starts, count, max_tokens)
    return text, _pack(text, units, count, max_tokens, max(0, min(overlap_tokens, max_tokens // 2)))


def _units(
    text: str, blocks: list[Block], starts: list[int], count: CountTokens, max_tokens: int
) -> list[_Unit]:
    units: list[_Unit] = []
    headings: list[tuple[int, str]] = []  # (level, text) of the headings in force
    page: int | None = None
    for block, start in zip(blocks, starts):
        new_page = block.page is not None and block.page != page
        page = block.page if block.page is not None else page
        if block.kind == "heading":
            headings = [h for h in headings if h[0] < block.level]
        context = " > ".join(h for _, h in headings)
        own = _short(block.text) if block.kind == "heading" else ""
        section = " > ".join(part for part in (context, own) if part)
        hard = new_page or block.kind == "heading"
        for s, e, tokens in _pieces(text, start, start + len(block.text), block.kind, count, max_tokens):
            n = tokens if tokens is not None else count(text[s:e])
            units.append(_Unit(s, e, n, page, context, hard, section, block.kind == "heading", new_page))
            new_page = False
            hard = False
        if block.kind == "heading":
            headings.append((block.level, _short(block.text)))
    return units


def _pieces(text: str, start: int, end: int, kind: str, count: CountTokens, max_tokens: int):
    """``(start, end, tokens or None)`` spans of ``text[start:end]``, each within ``max_tokens``
    (split only when needed)."""
    body = text[start:end]
    if not body.strip():
        return
    tokens = count(body) if len(body) <= _MAX_CHARS_PER_TOKEN * max_tokens else max_tokens + 1
    if tokens <= max_tokens:
        yield (*_strip(text, start, end), tokens)
        return
    pattern = _LINE if kind in ("code", "row") else None
    spans = [(m.start(), m.end()) for m in pattern.finditer(body)] if pattern else _sentences(body)
    for s, e in spans:
        piece = body[s:e]
        if not piece.strip():
            continue
        tokens = count(piece) if len(piece) <= _MAX_CHARS_PER_TOKEN * max_tokens else max_tokens + 1
        if tokens <= max_tokens:
            yield (*_strip(text, start + s, start + e), tokens)
        else:
            for ws, we in _word_groups(text, start + s, start + e, max_tokens):
                yield ws, we, None


def _sentences(body: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for m in _SENTENCE_END.finditer(body):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = max(pos, m.end())
    spans.append((pos, len(body)))
    return spans


def _word_groups(text: str, start: int, end: int, max_tokens: int):
    """Greedy groups of words, estimating ~3 characters a token (exact counts would be slow
    on pathological input such as a one-line 50 MB file)."""
    budget_chars = max_tokens * 3
    group_start = group_end = None
    for m in _WORD.finditer(text, start, end):
        s, e = m.start(), m.end()
        while e - s > budget_chars:  # one enormous "word" (base64, minified code): hard cut
            if group_start is not None:
                yield group_start, group_end
                group_start = None
            yield s, s + budget_chars
            s += budget_chars
        if group_start is not None and e - group_start > budget_chars:
            yield group_start, group_end
            group_start = None
        if group_start is None:
            group_start = s
        group_end = e
    if group_start is not None:
        yield group_start, group_end


def _pack(
    text: str, units: list[_Unit], count: CountTokens, max_tokens: int, overlap: int
) -> list[ChunkSpec]:
    chunks: list[ChunkSpec] = []
    current: list[_Unit] = []
    budget = max_tokens
    for unit in units:
        used = sum(u.tokens for u in current)
        # a heading right under another (a sheet and its column names, "# Guide" then "## Setup")
        # joins it: a chunk of nothing but a heading would be a useless hit
        stacked = unit.is_heading and not unit.new_page and all(u.is_heading for u in current)
        if current and ((unit.hard_break and not stacked) or used + unit.tokens > budget):
            chunks.append(_chunk(text, current))
            tail = [] if unit.hard_break else _tail(current, overlap)
            current = tail if sum(u.tokens for u in tail) + unit.tokens <= budget else []
        if not current:
            # the headings are embedded with the chunk, so they share its budget
            budget = max(max_tokens // 2, max_tokens - (count(unit.heading) if unit.heading else 0))
        current.append(unit)
    if current:
        chunks.append(_chunk(text, current))
    return chunks


def _tail(units: list[_Unit], overlap: int) -> list[_Unit]:
    """The last units of a chunk worth at most ``overlap`` tokens, repeated in the next one."""
    tail: list[_Unit] = []
    total = 0
    for unit in reversed(units[1:]):  # never the whole chunk again
        if total + unit.tokens > overlap:
            break
        tail.insert(0, unit)
        total += unit.tokens
    return tail


def _chunk(text: str, units: list[_Unit]) -> ChunkSpec:
    start, end = units[0].start, units[-1].end
    return ChunkSpec(
        text=text[start:end],
        heading=units[0].heading,
        page=units[0].page,
        start=start,
        end=end,
        n_tokens=sum(u.tokens for u in units),
        section=_leading_heading(units).section,
    )


def _leading_heading(units: list[_Unit]) -> _Unit:
    """The last of the headings a chunk starts with (its first unit when it starts with text)."""
    lead = units[0]
    for unit in units:
        if not unit.is_heading:
            break
        lead = unit
    return lead


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _short(heading: str) -> str:
    heading = " ".join(heading.lstrip("#").split())
    return heading if len(heading) <= 120 else heading[:117] + "..."


def embedding_text(chunk_text: str, heading: str) -> str:
    """What is embedded and keyword-indexed: the headings above a chunk, then the chunk."""
    return f"{heading}\n{chunk_text}" if heading else chunk_text
