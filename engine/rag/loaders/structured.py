"""Source code, CSV and JSON: text formats whose structure guides chunking."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..blocks import Block, LoadedDocument
from .text import decode_text, paragraphs

#: JSON leaves beyond this many are left out (the text is still searchable up to there)
MAX_JSON_LEAVES = 200_000


def load_code(data: bytes, name: str) -> LoadedDocument:
    """Blank-line separated runs of code; the chunker packs neighbours together."""
    text, encoding = decode_text(data, name)
    blocks = [Block(text=p.strip("\n"), kind="code") for p in paragraphs(text)]
    return LoadedDocument(kind="code", blocks=blocks, encoding=encoding)


def load_csv(data: bytes, name: str) -> LoadedDocument:
    """The header row becomes the heading every chunk of rows carries as context."""
    text, encoding = decode_text(data, name)
    delimiter = "\t" if name.lower().endswith(".tsv") else _sniff_delimiter(text)
    try:
        rows = _rows(text, delimiter)
    except csv.Error as e:
        # malformed, or a field over the csv module's limit (128 KB); raising that limit would
        # change process-wide state, so the file is kept whole as plain text instead
        doc = LoadedDocument(kind="csv", blocks=[Block(text=p) for p in paragraphs(text)], encoding=encoding)
        doc.notes.append(f"not readable as CSV ({e}); indexed as plain text")
        return doc
    if not rows:
        return LoadedDocument(kind="csv", blocks=[], encoding=encoding)
    header = " | ".join(c.strip() for c in rows[0])
    blocks = [Block(text=header, kind="heading", level=1)]
    blocks += [Block(text=" | ".join(c.strip() for c in row), kind="row") for row in rows[1:]]
    return LoadedDocument(kind="csv", blocks=blocks, encoding=encoding)


def _rows(text: str, delimiter: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)]


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def load_json(data: bytes, name: str, *, max_chars: int = 10_000_000) -> LoadedDocument:
    """Flatten to ``path: value`` lines so each fact is findable; invalid JSON is text."""
    text, encoding = decode_text(data, name)
    try:
        values = _parse_json(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        doc = LoadedDocument(kind="json", blocks=[Block(text=p) for p in paragraphs(text)], encoding=encoding)
        doc.notes.append(f"not valid JSON ({type(e).__name__}); indexed as plain text")
        return doc
    prefix_each = len(values) > 1
    rows: list[Block] = []
    chars = 0
    for i, value in enumerate(values):
        for path, leaf in _leaves(value, f"[{i}]" if prefix_each else ""):
            if len(rows) >= MAX_JSON_LEAVES:
                break
            rows.append(Block(text=f"{path or '(value)'}: {leaf}", kind="row"))
            chars += len(rows[-1].text)
            if chars > max_chars:  # deep paths repeat on every leaf: flattening can explode
                from . import too_much_text

                raise too_much_text(name, max_chars)
    return LoadedDocument(kind="json", blocks=rows, encoding=encoding)


def _parse_json(text: str) -> list[Any]:
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.split("\n") if line.strip()]  # JSON Lines


def _leaves(value: Any, path: str):
    stack = [(path, value)]
    while stack:  # iterative: deeply nested JSON must not hit the recursion limit
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
        else:
            yield path, json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
