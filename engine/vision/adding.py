"""Adding images, step by step: prepare each file (threads), stage its copy and row, then commit
the batch's vectors in one upsert. ``ImageService.add_files`` drives these under its write lock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import EngineError
from ..types import FileResult
from ..vectors import VectorCollection
from .clip import ClipEmbedder
from .loading import LoadedImage, decode_image, read_bytes
from .store import ImageRecords, StoredImage

log = logging.getLogger(__name__)

#: an image copied and its row inserted, waiting for its vector: (source, row, vector, row it replaces)
Staged = tuple[Path, StoredImage, list[float], StoredImage | None]


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """An image file read, checked, decoded and preprocessed, waiting for its vector."""

    path: Path
    loaded: LoadedImage
    tensor: Any
    caption: str


def prepare(
    path: Path,
    collection: str,
    caption: str,
    *,
    records: ImageRecords,
    embedder: ClipEmbedder,
    max_bytes: int,
) -> Prepared | FileResult:
    """Read, check, decode and preprocess one file (in a worker thread); a FileResult if it is not added."""
    try:
        data = read_bytes(path, max_bytes)
        loaded = decode_image(data, name=path.name, decode_size=embedder.image_size)
        same = records.find(collection, sha256=loaded.sha256)
        if same is not None:
            return FileResult(
                path=str(path),
                status="unchanged",
                id=same.id,
                items=1,
                message=f"{path.name}: already in {collection!r} as {same.file_name}",
            )
        tensor = embedder.preprocess(loaded.image)
    except EngineError as e:
        return FileResult(path=str(path), status="error", message=str(e))
    except Exception as e:  # noqa: BLE001 - one file's surprise must not cost the batch
        log.error("adding the image %s failed unexpectedly", path, exc_info=e)
        return FileResult(
            path=str(path),
            status="error",
            message=f"{path.name}: could not be added "
            f"({type(e).__name__}: {e}); the other files were not affected.",
        )
    text = " · ".join(t for t in (caption.strip(), loaded.caption) if t)
    return Prepared(path=path, loaded=loaded, tensor=tensor, caption=text)


def stage(p: Prepared, vector: list[float], collection: str, records: ImageRecords) -> FileResult | Staged:
    """Copy the file and insert its row; the vector is written for the whole batch after."""
    same = records.find(collection, sha256=p.loaded.sha256)  # a twin earlier in this batch
    if same is not None:
        return FileResult(
            path=str(p.path),
            status="unchanged",
            id=same.id,
            items=1,
            message=f"{p.path.name}: already in {collection!r} as {same.file_name}",
        )
    source = str(p.path.resolve())
    old = records.find(collection, source_path=source)
    try:
        image_id, stored = records.write_file(p.loaded.data, p.loaded.extension)
    except OSError as e:  # disk full, permissions: this file fails, the batch goes on
        return FileResult(path=str(p.path), status="error", message=f"Could not store a copy: {e}")
    try:
        record = records.insert(
            {
                "id": image_id,
                "collection": collection,
                "file_name": display_name(p.path.name),
                "source_path": source,
                "stored_name": stored.name,
                "sha256": p.loaded.sha256,
                "format": p.loaded.format,
                "width": p.loaded.width,
                "height": p.loaded.height,
                "bytes": len(p.loaded.data),
                "caption": p.caption,
            }
        )
    except EngineError as e:
        records.remove_file(stored.name)
        return FileResult(path=str(p.path), status="error", message=str(e))
    return (p.path, record, vector, old)


def commit(
    staged: list[FileResult | Staged],
    collection: str,
    *,
    records: ImageRecords,
    index: Callable[[], VectorCollection],
    remove: Callable[[StoredImage], None],
) -> list[FileResult]:
    """One vector upsert for the batch; on failure every staged row and copy is undone."""
    rows = [s for s in staged if isinstance(s, tuple)]
    try:
        index().upsert(
            [r.id for _, r, _, _ in rows],
            [v for _, _, v, _ in rows],
            [{"collection": collection, "file_name": r.file_name} for _, r, _, _ in rows],
        )
    except EngineError as e:
        for _, record, _, _ in rows:  # nothing half-written: undo the rows and copies
            records.delete_row(record.id)
            records.remove_file(record.path.name)
        return [
            s if isinstance(s, FileResult) else FileResult(path=str(s[0]), status="error", message=str(e))
            for s in staged
        ]
    out: list[FileResult] = []
    for s in staged:
        if isinstance(s, FileResult):
            out.append(s)
            continue
        path, record, _, old = s
        if old is not None and old.id != record.id:
            remove(old)
        status: Literal["replaced", "added"] = "replaced" if old is not None else "added"
        out.append(
            FileResult(
                path=str(path),
                status=status,
                id=record.id,
                items=1,
                message=f"{path.name}: {status}, {record.width}x{record.height} {record.format}",
            )
        )
    return out


def display_name(name: str) -> str:
    return "".join(ch if ch.isprintable() else "_" for ch in name)[:255] or "image"


def collect(futures: list[Future[Prepared | FileResult]]) -> list[Prepared | FileResult]:
    return [f.result() for f in futures]


def with_path(result: FileResult, path: Path) -> FileResult:
    return FileResult(path=str(path), status=result.status, message=result.message)
