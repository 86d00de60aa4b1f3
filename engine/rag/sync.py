"""Keep one folder's documents in a collection equal to the files in it.

Each ``poll`` compares the folder with what the last one saw (size and modification time
per file) and touches only what changed: a new or changed file is ingested (the content
hash skips a file whose bytes did not change), a file that vanished is deleted from the
index, and a vanished file whose bytes turn up under another name is a rename, moved in
SQLite without embedding anything. A changed file is taken only once two polls in a row
see the same size and time, so a file still being written is not indexed half-written.
The folder walk is ``files.expand``'s: links out of the folder are skipped, and a file that
fails to parse is reported and left alone until it changes again. Image files go to the
image index the same way (``image_sync``); when it cannot take them, they wait, and the
report says why.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..library import STOPPED, is_image
from ..types import FileResult
from .files import SourceFile, expand
from .image_sync import FolderImages, Images
from .progress import OnProgress

log = logging.getLogger(__name__)

Stat = tuple[int, int]

#: seconds between checks whether skipped images can be added now
IMAGE_RETRY_S = 30.0


@dataclass(kw_only=True)
class SyncReport:
    """What one poll of a folder changed."""

    folder: str
    #: files ingested (added, replaced, unchanged or refused)
    results: list[FileResult] = field(default_factory=list)
    #: (old name, new name) of renamed files
    renamed: list[tuple[str, str]] = field(default_factory=list)
    #: names of documents removed because their file is gone
    removed: list[str] = field(default_factory=list)
    #: why the folder could not be read this time (it was left as it is in the index)
    problem: str | None = None
    #: image files of the folder waiting because the image index cannot take them now, and why
    images_skipped: int = 0
    image_problem: str | None = None
    #: this poll skipped images (news; later polls only carry the count and reason on)
    skipped_now: bool = False

    @property
    def changed(self) -> bool:
        touched = any(r.status in ("added", "replaced", "error") for r in self.results)
        return touched or bool(self.renamed or self.removed or self.problem or self.skipped_now)

    def lines(self) -> list[str]:
        out = [f"{r.status}: {r.message or r.path}" for r in self.results if r.status != "unchanged"]
        out += [f"renamed: {old} -> {new}" for old, new in self.renamed]
        out += [f"removed: {name}" for name in self.removed]
        if self.skipped_now:
            out.append(f"images skipped: {self.images_skipped} image(s) not added: {self.image_problem}")
        return out + ([f"problem: {self.problem}"] if self.problem else [])


class FolderSync:
    """One watched folder and the collection it feeds."""

    def __init__(
        self,
        documents: Any,
        folder: Path,
        collection: str,
        *,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
        images: Images = lambda: None,
    ):
        self.documents = documents
        self.on_progress = on_progress
        self.cancel = cancel
        self.root = Path(folder).expanduser().resolve()
        self.collection = collection
        self.images = FolderImages(images, self.root, collection)
        #: image files handled by skipping them (no image index now): retried once there is one
        self._skipped_images: set[str] = set()
        self._image_problem: str | None = None
        self._image_check = time.monotonic()
        #: stat of every file as handled by the last poll that took it
        self._handled: dict[str, Stat] = {}
        #: stat of changed files seen once, waiting for a second look
        self._waiting: dict[str, Stat] = {}
        #: content hash of files this object read, by source
        self._hashes: dict[str, str] = {}

    def prime(self) -> None:
        """Take the folder as it is now as handled (it was just ingested); images only when the
        image index has them (if it could not take them, the first poll tries again)."""
        indexed = set(self.images.known())
        self._handled = {
            f.source: s
            for f, s in self._files().items()
            if not is_image(f.path) or str(f.path.resolve()) in indexed
        }

    def poll(self, *, settle: bool = True) -> SyncReport:
        """One comparison; ``settle`` False takes changed files at once (the first poll)."""
        report = SyncReport(folder=str(self.root))
        if not self.root.is_dir():  # unmounted or deleted: never read that as "every file was deleted"
            report.problem = f"{self.root} is not there (unplugged or removed?); its documents are kept."
            return report
        self._retry_skipped_images()
        files = self._files()
        ready = [f for f, s in files.items() if self._ready(f.source, s, settle)]
        take = [f for f in ready if not is_image(f.path)]
        current = {f.source for f in files}
        known = {d["source"]: d for d in self._known()}
        gone = [d for source, d in known.items() if source not in current]
        # a vanished file may be a rename whose new name is still settling: wait
        hold = any(source in current for source in self._waiting)
        if hold:
            gone = []
        for file in ready:
            self._hashes[file.source] = _hash(file.path)
        self._moves(gone, take, known, report)
        if take:
            report.results = self.documents.ingest_files(
                take, collection=self.collection, on_progress=self.on_progress, cancel=self.cancel
            )
            self._drop_stale(take, report)
        for d in gone:
            self.documents.delete(d["id"])
            report.removed.append(d["name"])
        stopped = self._sync_images([f for f in ready if is_image(f.path)], files, hold, report)
        stopped |= {r.path for r in report.results if r.message == STOPPED}
        if self._skipped_images:
            report.images_skipped, report.image_problem = len(self._skipped_images), self._image_problem
        for file in ready:
            if file.given not in stopped:
                self._handled[file.source] = files[file]
        for source in set(self._handled) - current:
            del self._handled[source]
            self._hashes.pop(source, None)
            self._skipped_images.discard(source)
        for source in set(self._waiting) - current:
            del self._waiting[source]
        return report

    def _sync_images(
        self, take: list[SourceFile], files: dict[SourceFile, Stat], hold: bool, report: SyncReport
    ) -> set[str]:
        """The folder's image files into the image index; the files an ingest stop left out."""
        present = {str(f.path.resolve()) for f in files if is_image(f.path)}
        gone = [] if hold else [r for source, r in self.images.known().items() if source not in present]
        if not take and not gone:
            return set()
        outcome = self.images.sync(take, gone, self._hashes, cancel=self.cancel)
        report.results += outcome.results
        report.renamed += outcome.renamed
        report.removed += outcome.removed
        self._skipped_images |= {f.source for f in outcome.skipped}
        self._skipped_images -= {f.source for f in take if f not in outcome.skipped}
        if outcome.problem:
            report.skipped_now, self._image_problem = True, outcome.problem
        return {r.path for r in outcome.results if r.message == STOPPED}

    def _retry_skipped_images(self) -> None:
        """Images skipped because the image index could not take them are tried again once it can
        (checked every ``IMAGE_RETRY_S``, never by reading the files again)."""
        if not self._skipped_images or time.monotonic() - self._image_check < IMAGE_RETRY_S:
            return
        self._image_check = time.monotonic()
        if self.images.problem() is None:
            for source in self._skipped_images:
                self._handled.pop(source, None)
            self._skipped_images.clear()

    def _files(self) -> dict[SourceFile, Stat]:
        out: dict[SourceFile, Stat] = {}
        for entry in expand([self.root]):
            if isinstance(entry, SourceFile):
                try:
                    st = entry.path.stat()
                except OSError:
                    continue  # gone between the walk and now
                out[entry] = (st.st_size, st.st_mtime_ns)
        return out

    def _ready(self, source: str, stat: Stat, settle: bool) -> bool:
        if self._handled.get(source) == stat:
            return False
        if settle and self._waiting.get(source) != stat:
            self._waiting[source] = stat  # still moving, perhaps: look again next poll
            return False
        self._waiting.pop(source, None)
        return True

    def _known(self) -> list[dict[str, Any]]:
        inside = str(self.root).rstrip("/") + "/"
        docs = self.documents.store.documents_with_hashes(self.collection)
        return [d for d in docs if d["source"].startswith(inside)]

    def _moves(
        self, gone: list[dict[str, Any]], take: list[SourceFile], known: dict[str, Any], report: SyncReport
    ) -> None:
        """A gone document whose bytes are now in a new file: move it there (nothing re-embedded)."""
        fresh = {self._hashes[f.source]: f for f in take if f.source not in known}
        for d in list(gone):
            file = fresh.pop(d["content_hash"], None)
            if file is None:
                continue
            self.documents.store.move(d["id"], source=file.source, name=file.name)
            gone.remove(d)
            take.remove(file)
            report.renamed.append((d["name"], file.name))

    def _drop_stale(self, take: list[SourceFile], report: SyncReport) -> None:
        """A changed file whose new bytes equal another document's is not indexed again ("identical
        to ..."): its old version must still go."""
        for d in self._known():
            source = d["source"]
            if source in self._hashes and d["content_hash"] != self._hashes[source]:
                if any(f.source == source for f in take):
                    self.documents.delete(d["id"])
                    report.removed.append(d["name"])


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""  # the ingest reports why it cannot be read
    return digest.hexdigest()
