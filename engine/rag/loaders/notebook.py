"""Jupyter notebooks (.ipynb): markdown cells read as Markdown (their headings head the code
below them), code cells as code, and only a short piece of each text output (images, HTML and
long logs are left out: they would drown the code in noise). Plain JSON, no Jupyter import.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .markdown import markdown_blocks
from .text import decode_text

#: characters kept of each cell's text output
MAX_OUTPUT_CHARS = 300


def load_notebook(data: bytes, name: str) -> LoadedDocument:
    text, encoding = decode_text(data, name)
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise IngestError(f"{name}: not a valid notebook (broken JSON: {type(e).__name__}: {e}).") from e
    if not isinstance(notebook, dict):
        raise IngestError(f"{name}: not a Jupyter notebook (no cells).")
    cells = notebook.get("cells")
    if cells is None:  # nbformat 3 kept cells in worksheets
        cells = [
            c for w in notebook.get("worksheets") or [] if isinstance(w, dict) for c in w.get("cells") or []
        ]
    if not isinstance(cells, list):
        raise IngestError(f"{name}: not a Jupyter notebook (no cells).")
    blocks: list[Block] = []
    for cell in cells:
        if isinstance(cell, dict):
            blocks.extend(_cell_blocks(cell))
    return LoadedDocument(kind="notebook", blocks=blocks, encoding=encoding)


def _cell_blocks(cell: dict[str, Any]) -> list[Block]:
    kind = cell.get("cell_type")
    source = _joined(cell.get("source", cell.get("input", "")))
    if not source.strip():
        return []
    if kind == "markdown":
        return markdown_blocks(source)
    if kind in ("heading",):  # nbformat 3
        level = cell.get("level", 1)
        return [Block(text=source.strip(), kind="heading", level=level if isinstance(level, int) else 1)]
    if kind != "code":
        return [Block(text=source.strip("\n"))]  # raw cells
    blocks = [Block(text=source.strip("\n"), kind="code")]
    output = _output_text(cell.get("outputs") or [])
    if output:
        blocks.append(Block(text=f"Output: {output}"))
    return blocks


def _output_text(outputs: list[Any]) -> str:
    texts = []
    for output in outputs:
        if not isinstance(output, dict):
            continue
        if output.get("output_type") == "stream":
            texts.append(_joined(output.get("text", "")))
        elif isinstance(output.get("data"), dict):
            texts.append(_joined(output["data"].get("text/plain", "")))
        elif output.get("output_type") in ("pyout",):  # nbformat 3
            texts.append(_joined(output.get("text", "")))
    text = " ".join(" ".join(texts).split())
    return text if len(text) <= MAX_OUTPUT_CHARS else text[: MAX_OUTPUT_CHARS - 1] + "…"


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""
