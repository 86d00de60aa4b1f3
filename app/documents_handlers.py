"""Behaviour of the Documents panel, as plain functions tests call without a browser.

Every function catches EngineError and returns its message as markdown, so the page
shows what went wrong and what to do, never a traceback. Document text is untrusted:
it is escaped before it is shown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.library import DEFAULT_COLLECTION, IMAGE_SUFFIXES, STOPPED, offered_collections
from engine.rag import SearchOptions
from engine.rag.loaders import SUFFIX_KINDS
from engine.rag.progress import IngestProgress, OnProgress
from engine.rag.routing import add_files
from engine.types import FileResult, Hit

from .markup import error_markdown, escape_text

if TYPE_CHECKING:
    from engine.factory import Services

#: what the upload box offers (images are routed to the Images feature)
UPLOAD_TYPES = sorted({*SUFFIX_KINDS, *IMAGE_SUFFIXES})
TABLE_HEADERS = ["Name", "Type", "Chunks", "Pages", "Size", "Updated", "ID"]
_ICONS = {"added": "✅", "replaced": "🔁", "unchanged": "＝", "skipped": "⤼", "error": "❌"}
ALREADY_ADDED = "These files were already added (their uploaded copies are deleted once read). Choose them again to add them again."
#: characters of the document shown on each side of a passage when it is expanded
CONTEXT_CHARS = 400


def collection_choices(services: Services) -> list[str]:
    return offered_collections(services.documents.collections())


def upload(
    services: Services,
    files: list[Any] | None,
    collection: str | None,
    progress: Callable[[int, int, str], None] | None = None,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Add uploaded files (documents and images) to a collection; one report line per file.

    ``files`` are Gradio's temporary copies of the uploads: they are deleted once ingested
    (or refused), so no copy of a user's document outlives its upload. Once ``cancel`` is set
    (Stop), the ingest ends after the file in progress and the report says what went in."""
    paths = [Path(getattr(f, "name", f)) for f in (files or [])]
    if not paths:
        return "Choose one or more files first."
    if not any(p.exists() for p in paths):  # "Add" pressed again: the uploads were used and deleted
        return ALREADY_ADDED
    try:
        results = add_files(
            services.documents,
            services.images,
            paths,
            collection=collection or DEFAULT_COLLECTION,
            progress=progress,
            names=[p.name for p in paths],
            on_progress=on_progress,
            cancel=cancel,
        )
    except EngineError as e:
        return error_markdown(e)
    finally:
        discard_uploads(paths)
    return report(results)


class UploadStops:
    """The cancel event of each page session's running upload, so Stop in one browser tab stops
    that tab's upload only (the panel makes one; nothing lives at module level)."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def begin(self, session: str) -> threading.Event:
        with self._lock:
            event = self._events[session] = threading.Event()
        return event

    def end(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]

    def stop(self, session: str) -> str:
        """Ask the session's upload to stop; what to show meanwhile."""
        with self._lock:
            event = self._events.get(session)
        if event is None:
            return "No upload is running."
        event.set()
        return "Stopping after the file in progress…"


def discard_uploads(paths: list[Path]) -> None:
    """Delete upload temp files, and the per-upload folder Gradio made for each when now empty."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()  # Gradio keeps each upload in a folder of its own
        except OSError:
            pass  # not empty (another upload) or already gone: nothing of this file is left


def report(results: list[FileResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in _ICONS}
    head = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to add"
    left = sum(r.message == STOPPED for r in results)
    if left:
        went_in = counts["added"] + counts["replaced"]
        head = (
            f"Stopped: {went_in} file(s) added; {left} not added (nothing half-written; add them "
            f"again to finish). {head}"
        )
    lines = [f"- {_ICONS[r.status]} {escape_text(_line(r))}" for r in results]
    return f"**{head}**\n\n" + "\n".join(lines)


def _line(result: FileResult) -> str:
    if result.message == STOPPED:  # the same words for every file left out: name it
        return f"{Path(result.path).name}: not added, the upload was stopped before it."
    return result.message or result.path


def documents_table(services: Services, collection: str | None) -> list[list[Any]]:
    rows = []
    for d in services.documents.documents(collection or None):
        rows.append(
            [d.name, d.kind, d.n_chunks, d.n_pages or "", _size(d.size_bytes), d.updated_at[:16], d.id]
        )
    return rows


def document_choices(services: Services, collection: str | None) -> list[tuple[str, str]]:
    return [
        (f"{d.name} ({d.n_chunks} chunks)", d.id) for d in services.documents.documents(collection or None)
    ]


def _size(n: float) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return str(size)


def delete_document(services: Services, document_id: str | None) -> str:
    if not document_id:
        return "Choose a document to delete."
    try:
        services.documents.delete(document_id)
    except EngineError as e:
        return error_markdown(e)
    return "Deleted the document and its index entries."


def create_collection(services: Services, name: str) -> tuple[str, str | None]:
    """(message, the created name or None)."""
    try:
        created = services.documents.create_collection(name)
    except EngineError as e:
        return error_markdown(e), None
    return f"Collection **{escape_text(created)}** is ready.", created


def delete_collection(services: Services, name: str | None) -> str:
    try:
        services.documents.delete_collection(name or "")
    except EngineError as e:
        return error_markdown(e)
    return f"Deleted collection **{escape_text(name or '')}** and its documents."


def search(
    services: Services,
    query: str,
    collection: str | None = None,
    k: int = 5,
    mode: str = "hybrid",
    multi_query: bool = False,
    hyde: bool = False,
) -> str:
    """Ranked hits as markdown; each expands to show the passage in its document."""
    try:
        hits = services.documents.search(
            query,
            k=int(k),
            collections=[collection] if collection else None,
            mode=mode,
            options=SearchOptions(multi_query=multi_query, hyde=hyde),
        )
    except EngineError as e:
        return error_markdown(e)
    if not hits:
        return "No matching passages."
    return "\n\n".join(hit_markdown(services, n, h) for n, h in enumerate(hits, start=1))


def hit_markdown(services: Services, number: int, hit: Hit) -> str:
    where = hit.source + (f", page {hit.page}" if hit.page is not None else "")
    snippet = " ".join(hit.text.split())
    snippet = snippet[:240] + ("…" if len(snippet) > 240 else "")
    heading = hit.meta.get("heading")
    section = f" · {escape_text(heading)}" if heading else ""
    return (
        f"**[{number}] {escape_text(where)}**{section} · score {hit.score:.4f}\n\n> {escape_text(snippet)}\n\n"
        f"<details><summary>Show the passage in its document</summary>\n\n{passage_context(services, hit)}"
        "\n\n</details>"
    )


def passage_context(services: Services, hit: Hit, *, chars: int = CONTEXT_CHARS) -> str:
    """The passage in bold, with the text around it, from the stored document."""
    document_id = hit.meta.get("document_id")
    if not document_id or hit.start is None or hit.end is None:
        return escape_text(hit.text)
    try:
        text = services.documents.document_text(document_id)
    except EngineError:
        return escape_text(hit.text)
    before = text[max(0, hit.start - chars) : hit.start]
    after = text[hit.end : hit.end + chars]
    passage = "\n\n".join(
        f"**{escape_text(p)}**" for p in text[hit.start : hit.end].split("\n\n") if p.strip()
    )
    return (
        ("…" if hit.start > chars else "")
        + escape_text(before)
        + "\n\n"
        + passage
        + "\n\n"
        + escape_text(after)
        + ("…" if hit.end + chars < len(text) else "")
    )


def set_chat_rewriting(services: Services, multi_query: bool, hyde: bool) -> str:
    """Turn query rewriting on or off for document retrieval in chat."""
    from dataclasses import replace

    services.documents.chat_options = replace(
        services.documents.chat_options, multi_query=bool(multi_query), hyde=bool(hyde)
    )
    on = [n for n, v in (("multi-query", multi_query), ("HyDE", hyde)) if v]
    return "Chat questions are searched " + (f"with {' and '.join(on)}." if on else "as typed.")


def set_conversation_collections(
    services: Services, conversation_id: str | None, names: list[str] | None
) -> str:
    """Which collections a conversation draws on; none chosen means all of them."""
    if not conversation_id:
        return "Start a conversation first."
    try:
        services.documents.resolve_collections(list(names or []))
        services.conversations.update(conversation_id, collections=list(names or []))
    except EngineError as e:
        return error_markdown(e)
    return (
        "This chat draws on "
        + (", ".join(escape_text(n) for n in names) if names else "all collections")
        + "."
    )


def progress_text(progress: IngestProgress) -> str:
    """The upload bar's caption: files, chunks, chunks/s, time left, and the file at hand."""
    name = progress.current.rsplit("/", 1)[-1][:40]
    return f"{progress.line()} · {name}" if name else progress.line()


# watched folders

WATCH_HEADERS = ["Folder", "Collection", "Last change"]


def watched_table(services) -> list[list[str]]:
    return [[w.folder, w.collection, w.status] for w in services.documents.watcher.folders()]


def watched_choices(services) -> list[str]:
    return [w.folder for w in services.documents.watcher.folders()]


def watch_folder(services: Services, folder: str | None, collection: str | None) -> str:
    """Start keeping a folder on this machine in sync with a collection."""
    try:
        watched = services.documents.watcher.add(folder or "", collection or DEFAULT_COLLECTION)
    except EngineError as e:
        return error_markdown(e)
    return (
        f"Watching **{escape_text(watched.folder)}** for **{escape_text(watched.collection)}**: its files are "
        "added now, and added, changed, renamed or deleted files follow within seconds."
    )


def unwatch_folder(services: Services, folder: str | None) -> str:
    if not folder:
        return "Choose a watched folder first."
    try:
        services.documents.watcher.remove(folder)
    except EngineError as e:  # removed meanwhile (another tab, the command line)
        return error_markdown(e)
    return f"Stopped watching **{escape_text(folder)}**; its documents stay (delete them above if you like)."
