"""Where a cited passage lies in its document, and the text around it for a reader to open.

A chunk row knows its document, its exact span of the document's stored text, its page (PDF
page, slide) and its section (the heading path). From these a citation says where it is as a
reader would ("page 3", "slide 2: Fares", "sheet Staff", "Guide > Setup") and the viewer
shows the page or section around it with the cited span marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError
from .store import DocumentStore

#: how much text the viewer shows around a cited span at most
MAX_CONTEXT_CHARS = 6000
#: neighbouring chunks of the same section shown before and after a cited one
NEIGHBOURS = 2
_SHEET = "Sheet: "


def location(kind: str, page: int | None, section: str | None) -> str:
    """A citation's place in its document, for people: page, slide, sheet or heading path."""
    section = (section or "").strip()
    if kind == "pptx" and page is not None:
        untitled = not section or section == f"Slide {page}"
        return f"slide {page}" if untitled else f"slide {page}: {section}"
    if page is not None:
        return f"page {page}" + (f" · {section}" if section else "")
    if kind == "xlsx" and section.startswith(_SHEET):
        return "sheet " + section[len(_SHEET) :].split(" > ")[0]
    return section


def row_location(row: dict[str, Any]) -> str:
    """``location`` of a chunk row (DocumentStore.chunks); older rows have no section."""
    return location(row.get("kind") or "", row.get("page"), row.get("section") or row.get("heading"))


@dataclass(frozen=True, kw_only=True)
class Passage:
    """A cited chunk in the text around it, as the citation viewer shows it."""

    chunk_id: str
    document_id: str
    #: the document's file name
    name: str
    location: str
    #: the document's stored text around the chunk (its page, or its section's neighbours)
    text: str
    #: the cited span within ``text``
    start: int
    end: int
    #: whether the document goes on before / after ``text``
    more_before: bool
    more_after: bool


def passage(store: DocumentStore, chunk_id: str, *, max_chars: int = MAX_CONTEXT_CHARS) -> Passage:
    """The cited chunk ``chunk_id`` with its surroundings; NotFoundError once its document is
    gone or has been replaced by a new version (the chunk ids change with the content)."""
    row = store.chunks([chunk_id]).get(chunk_id)
    if row is None:
        raise NotFoundError(
            "This passage is no longer in your documents: its file was removed or changed since the answer."
        )
    text = store.document_text(row["document_id"])
    lo, hi = _surroundings(store.spans(row["document_id"]), row)
    budget = max(0, max_chars - (row["end"] - row["start"]))
    lo = max(lo, row["start"] - budget // 2)
    hi = min(hi, row["end"] + budget - (row["start"] - lo))
    return Passage(
        chunk_id=chunk_id,
        document_id=row["document_id"],
        name=row["name"],
        location=row_location(row),
        text=text[lo:hi],
        start=row["start"] - lo,
        end=row["end"] - lo,
        more_before=lo > 0,
        more_after=hi < len(text),
    )


def _surroundings(spans: list[dict[str, Any]], row: dict[str, Any]) -> tuple[int, int]:
    """The whole page for paged documents; else the neighbouring chunks of the same section."""
    if row["page"] is not None:
        near = [s for s in spans if s["page"] == row["page"]]
    else:
        section = row["section"] or row["heading"]
        near = [
            s
            for s in spans
            if abs(s["seq"] - row["seq"]) <= NEIGHBOURS and (s["section"] or s["heading"]) == section
        ]
    starts = [s["start"] for s in near] + [row["start"]]
    ends = [s["end"] for s in near] + [row["end"]]
    return min(starts), max(ends)
