"""PPTX: each slide is a page whose title is its heading; text boxes, tables and speaker
notes in order. The only module importing pptx (python-pptx, which parses with entities off).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .archive import check_zip, damaged, refuse_encrypted_office

#: groups inside groups deeper than this are hostile, not design
MAX_GROUP_DEPTH = 20


def load_pptx(data: bytes, name: str, *, max_pages: int = 2000) -> LoadedDocument:
    refuse_encrypted_office(data, name, fmt="PPTX", old=".ppt")
    check_zip(data, name, fmt="PPTX").close()
    from pptx import Presentation

    try:
        presentation = Presentation(io.BytesIO(data))
        slides = presentation.slides
        count = len(slides)
        if count > max_pages:
            raise IngestError(
                f"{name}: refused, too many slides: {count:,}, over the limit of {max_pages:,}. "
                "Split the presentation, or raise the limit (--max-pages)."
            )
        blocks: list[Block] = []
        empty: list[int] = []
        for number, slide in enumerate(slides, start=1):
            mine = list(_slide_blocks(slide, number))
            if not mine:
                empty.append(number)
            blocks.extend(mine)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - python-pptx raises many types for damaged files
        raise damaged(name, "PPTX", e) from e
    if not blocks:
        raise IngestError(f"{name}: no text on any of its {count} slide(s) (pictures only?).")
    doc = LoadedDocument(kind="pptx", blocks=blocks, n_pages=count)
    if empty:
        doc.notes.append(f"{len(empty)} slide(s) without text")
    return doc


def _slide_blocks(slide, number: int) -> Iterator[Block]:
    title_shape = slide.shapes.title
    title = " ".join((title_shape.text_frame.text if title_shape is not None else "").split())
    # the title heads every chunk of its slide; an untitled slide is still cited by its number
    yield Block(text=title or f"Slide {number}", kind="heading", level=1, page=number)
    for shape in slide.shapes:
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        yield from _shape_blocks(shape, number, 0)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        text = notes.text.strip() if notes is not None else ""
        if text:
            yield Block(text=f"Notes: {text}", page=number)


def _shape_blocks(shape, number: int, depth: int) -> Iterator[Block]:
    if depth > MAX_GROUP_DEPTH:
        return
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:  # its shapes, in order
        for inner in shape.shapes:
            yield from _shape_blocks(inner, number, depth + 1)
    elif shape.has_table:
        for row in shape.table.rows:
            cells = [" ".join(cell.text.split()) for cell in row.cells]
            if any(cells):
                yield Block(text=" | ".join(cells), kind="row", page=number)
    elif shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            text = " ".join(paragraph.text.split())
            if text:
                yield Block(text=text, page=number)
