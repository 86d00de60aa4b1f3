"""One entry for "add these files": documents to the text index, images to the image index.

Used by the ``ingest`` command and the Documents panel, so a folder mixing both is split
the same way everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..library import DEFAULT_COLLECTION
from ..types import FileResult
from .files import SourceFile, expand, split_images
from .ingest import Progress
from .progress import OnProgress

if TYPE_CHECKING:
    from ..vision import ImageService
    from .service import DocumentService


def add_files(
    documents: DocumentService,
    images: ImageService | None,
    paths: Sequence[Path | str],
    *,
    collection: str = DEFAULT_COLLECTION,
    progress: Progress | None = None,
    names: Sequence[str] | None = None,
    on_progress: OnProgress | None = None,
    cancel: threading.Event | None = None,
) -> list[FileResult]:
    """Ingest ``paths`` (files and folders); images go to ``images.add_files`` when the Images
    feature is there, and get a clear per-file message when it is not. Once ``cancel`` is set,
    what is not committed yet is left out ("skipped"), documents and images alike."""
    files = expand(paths, names)
    image_files, rest = split_images(files)
    total = len(files)
    done_before = 0

    def tick(done: int, _total: int, name: str) -> None:
        if progress is not None:
            progress(done_before + done, total, name)

    results = (
        documents.ingest_files(
            rest, collection=collection, progress=tick, on_progress=on_progress, cancel=cancel
        )
        if rest
        else []
    )
    done_before = len(results)
    if image_files and images is not None:
        results += images.add_files(
            [f.path for f in image_files], collection=collection, progress=tick, cancel=cancel
        )
    elif image_files:
        results += [_no_images(f) for f in image_files]
        tick(len(image_files), total, "")
    return results


def _no_images(file: SourceFile) -> FileResult:
    return FileResult(
        path=file.given,
        status="error",
        message=f"{file.name}: images need the Images feature, which is not available here.",
    )
