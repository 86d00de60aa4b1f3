"""Behaviour of the Images panel, as plain functions tests call without a browser.

Every function catches EngineError and returns its message as markdown, so the page
shows what went wrong and what to do, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.documents_handlers import ALREADY_ADDED, discard_uploads
from engine.errors import EngineError
from engine.library import DEFAULT_COLLECTION, offered_collections
from engine.types import FileResult, Hit

from .markup import code_span, error_markdown, escape_inline, escape_text

if TYPE_CHECKING:
    from engine.factory import Services

Gallery = list[tuple[str, str]]

NO_VISION_MODEL = (
    "The loaded chat model is text-only, so it cannot look at the image itself. To let it, load a "
    "vision-capable GGUF together with its multimodal projector (mmproj) file, such as a LLaVA-1.5/1.6, "
    "MiniCPM-V or Moondream2 model. Meanwhile Hearth shows what CLIP finds for the image."
)


def _path(value: Any) -> Path:
    """A path from what Gradio hands over: a str, a Path, or a file object with .name."""
    return Path(value) if isinstance(value, (str, Path)) else Path(value.name)


def status(services: Services) -> str:
    """The panel's first line: whether CLIP can load, and how to provide it if not."""
    ok, message = services.images.available()
    return (
        f"✅ {escape_text(message)}" if ok else f"⚠️ **Image search is unavailable.** {escape_text(message)}"
    )


def collection_choices(services: Services) -> list[str]:
    return offered_collections(services.images.collections())


def upload(
    services: Services,
    files: list[Any] | None,
    collection: str,
    progress: Callable[[int, int, str], None] | None = None,
) -> str:
    """Add uploaded files to a collection; a markdown report with one line per file.

    ``files`` are Gradio's temporary copies of the uploads: deleted once ingested or refused
    (the image index keeps its own copy in the data directory)."""
    paths = [_path(f) for f in (files or [])]
    if not paths:
        return "Choose one or more images first (PNG, JPEG, WebP, GIF or BMP)."
    if not any(p.exists() for p in paths):  # "Add" pressed again: the uploads were used and deleted
        return ALREADY_ADDED
    try:
        results = services.images.add_files(
            paths, collection=collection or DEFAULT_COLLECTION, progress=progress
        )
    except EngineError as e:
        return error_markdown(e)
    finally:
        discard_uploads(paths)
    return report(results)


def report(results: list[FileResult]) -> str:
    icons = {"added": "✅", "replaced": "🔁", "unchanged": "＝", "skipped": "⤼", "error": "❌"}
    counts = {s: sum(r.status == s for r in results) for s in icons}
    head = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to add"
    lines = []
    for r in results:
        name = Path(r.path).name
        detail = r.message.removeprefix(f"{name}: ") if r.message else r.status
        lines.append(f"- {icons[r.status]} {code_span(name)}: {escape_inline(detail)}")
    return f"**{head}**\n\n" + "\n".join(lines)


def gallery(hits: list[Hit]) -> Gallery:
    """Gallery items: (stored image path, 'file name · score')."""
    return [(h.meta["path"], f"{h.source} · {h.score:.3f}") for h in hits]


def _results(hits: list[Hit], what: str) -> tuple[Gallery, str]:
    if not hits:
        return [], f"No images found for {what}. Add some in *Add images* first."
    rows = "\n".join(
        f"| {i} | {escape_inline(h.source)} | {escape_inline(h.meta.get('collection', ''))} | {h.score:.3f} |"
        for i, h in enumerate(hits, 1)
    )
    return gallery(
        hits
    ), f"{len(hits)} images for {what}:\n\n| # | file | collection | score |\n|---|---|---|---|\n{rows}"


def search_by_text(
    services: Services, query: str, collection: str | None = None, k: int = 8
) -> tuple[Gallery, str]:
    try:
        hits = services.images.search_text(query, k=int(k), collection=collection or None)
    except EngineError as e:
        return [], error_markdown(e)
    return _results(hits, f"“{escape_inline(query)}”")


def search_by_image(
    services: Services, image: Any, collection: str | None = None, k: int = 8
) -> tuple[Gallery, str]:
    if not image:
        return [], "Choose an example image first."
    path = _path(image)
    try:
        hits = services.images.search_image(path, k=int(k), collection=collection or None)
    except EngineError as e:
        return [], error_markdown(e)
    return _results(hits, f"the example image {escape_inline(path.name)}")


def parse_labels(text: str) -> list[str]:
    """Labels typed one per line or separated by commas."""
    return [part.strip() for line in (text or "").splitlines() for part in line.split(",") if part.strip()]


def classify(services: Services, image: Any, labels_text: str) -> tuple[dict[str, float], str]:
    """Zero-shot labels for an image: ({label: probability}, markdown)."""
    if not image:
        return {}, "Choose an image first."
    path = _path(image)
    try:
        ranked = services.images.classify(path, parse_labels(labels_text))
    except EngineError as e:
        return {}, error_markdown(e)
    best, p = ranked[0]
    return dict(ranked), f"Most likely: **{escape_inline(best)}** ({p:.0%}) among {len(ranked)} labels."


def library(services: Services, collection: str | None = None) -> tuple[Gallery, list[tuple[str, str]], str]:
    """The collection's images: gallery items, (label, id) choices for deleting, a summary line."""
    images = services.images.list(collection or None)
    items = [(str(i.path), i.file_name) for i in images]
    choices = [(f"{i.file_name} ({i.collection})", i.id) for i in images]
    where = f"in {escape_inline(repr(collection))}" if collection else "in all collections"
    return items, choices, f"{len(images)} images {where}."


def delete_image(services: Services, image_id: str | None) -> str:
    if not image_id:
        return "Pick an image to delete first."
    try:
        services.images.delete(image_id)
    except EngineError as e:
        return error_markdown(e)
    return "Deleted: the image, its stored copy and its vector are gone."


def vision_model_note(services: Services) -> tuple[bool, str]:
    """Whether the loaded chat model can look at images itself (a vision GGUF with its mmproj)."""
    try:
        sees = services.models.backend.supports_images
    except EngineError:  # no model loaded: nothing can see the image
        sees = False
    if sees:
        return (
            True,
            "The loaded model can see images: the attached image goes to the model with your message.",
        )
    return False, NO_VISION_MODEL


def describe_attachment(services: Services, path: Path | str) -> str:
    """Markdown for an image attached to a chat message: the most similar stored images,
    the closest passages in CLIP space, and whether the model itself can see the image."""
    path = _path(path)
    _, note = vision_model_note(services)
    try:
        found = services.images.related_to_image(path, k=5)
    except EngineError as e:
        return f"{error_markdown(e)}\n\n{note}"
    parts = [f"**Attached image:** {code_span(found['file_name'])} ({found['width']}×{found['height']})"]
    if found["caption"]:
        parts.append(f"Text in the file: {escape_text(found['caption'])}")
    images = found["images"]
    if images:
        parts.append(
            "**Most similar images**\n"
            + "\n".join(
                f"{i}. {code_span(h.source)} ({escape_inline(h.meta.get('collection', ''))}) · {h.score:.3f}"
                for i, h in enumerate(images, 1)
            )
        )
    else:
        parts.append("No stored images to compare with yet.")
    chunks = found["chunks"]
    if chunks:
        parts.append(
            "**Closest passages (CLIP space)**\n"
            + "\n".join(
                f"{i}. *{escape_inline(h.source)}* · {h.score:.3f}: {escape_text(_quote(h.text))}"
                for i, h in enumerate(chunks, 1)
            )
        )
    elif found["note"]:
        parts.append(escape_text(found["note"]))
    parts.append(f"_{note}_")
    return "\n\n".join(parts)


def _quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return (text[: limit - 1] + "…") if len(text) > limit else text


def attachment_messages(services: Services, path: str, labels: str) -> list[dict[str, Any]]:
    """The chat's preface for an attached image: the image, what the index finds like it, and
    zero-shot labels when at least two are typed."""
    text = describe_attachment(services, path)
    names = [name.strip() for name in (labels or "").split(",") if name.strip()]
    if len(names) >= 2:
        try:
            scored = services.images.classify(Path(path), names)
            text += "\n\n**Labels**: " + " · ".join(f"{escape_inline(n)} {p:.0%}" for n, p in scored)
        except EngineError as e:
            text += "\n\n" + error_markdown(e)
    return [
        {"role": "user", "content": {"path": path}},
        {
            "role": "assistant",
            "content": text,
            "metadata": {"title": "🖼 About the attached image", "status": "done"},
        },
    ]
