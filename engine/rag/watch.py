"""Watched folders: a list kept in SQLite, and a background thread that polls each one.

Polling (size and modification time, every ``interval`` seconds) rather than file-system
events: it sees the same thing on every OS and file system (network shares and
containers included, where inotify is often silent), survives a folder being unmounted
and mounted again, and with two polls needed to settle a change it still reflects an edit
in search within a few seconds. A folder whose poll fails is logged and tried again on
the next poll; nothing a file contains can stop the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NotFoundError
from ..store.conversations import now_iso
from ..store.db import Database
from .image_sync import Images
from .progress import IngestProgress
from .sync import FolderSync, SyncReport

log = logging.getLogger(__name__)

#: seconds between polls: with a change settling over two polls, search reflects it in about 2-3 s
DEFAULT_INTERVAL = 1.0


@dataclass(frozen=True, kw_only=True)
class WatchedFolder:
    folder: str
    collection: str
    #: the last poll's outcome, for the page ("" before the first)
    status: str = ""


class FolderWatcher:
    """The watched folders of one data directory, synced by ``poll_once`` or the thread ``start`` runs.

    One list, in SQLite: the Documents tab and ``ingest --watch`` both add to it and sync it
    (never at once: one process holds a data directory). Image files go to the image index."""

    def __init__(
        self,
        documents: Any,
        database: Database,
        *,
        interval: float = DEFAULT_INTERVAL,
        on_report: Callable[[SyncReport], None] | None = None,
        images: Images = lambda: None,
    ):
        self.documents = documents
        self.database = database
        self.images = images
        self.interval = interval
        self.on_report = on_report
        self._syncs: dict[str, FolderSync] = {}
        self._status: dict[str, str] = {}
        self._lock = threading.Lock()  # one poll at a time (the thread's, or a caller's)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # the list

    def folders(self) -> list[WatchedFolder]:
        with self.database.read() as db:
            rows = list(db.execute("select folder, collection from rag_watched_folders order by folder"))
        return [WatchedFolder(folder=f, collection=c, status=self._status.get(f, "")) for f, c in rows]

    def find(self, folder: str | Path) -> WatchedFolder | None:
        """The list's entry for ``folder``, however it is written (compared as resolved paths)."""
        wanted = Path(folder).expanduser().resolve()
        return next((w for w in self.folders() if Path(w.folder).resolve() == wanted), None)

    def add(self, folder: str | Path, collection: str) -> WatchedFolder:
        """Watch ``folder`` (it must exist) for ``collection``; saved, so it is watched after a restart.
        A folder already in the list keeps its one entry (its collection becomes ``collection``)."""
        path = check_folder(folder)
        collection = self.documents.store.ensure_collection(collection)
        before = self.find(path)
        key = before.folder if before else str(path)
        if before is not None and before.collection == collection:
            return before
        with self.database.tx() as db:
            db.table("rag_watched_folders").insert(
                {"folder": key, "collection": collection, "added_at": now_iso()}, replace=True
            )
        # not under the poll lock: a first poll of a big folder may hold it for minutes (a dict
        # pop is atomic, and the next poll reads the list afresh)
        self._syncs.pop(key, None)  # a new collection means a fresh first poll
        return WatchedFolder(folder=key, collection=collection)

    def remove(self, folder: str | Path) -> WatchedFolder:
        """Stop watching; the folder's documents stay in the index (delete them in the list).
        NotFoundError when the folder is not in the list."""
        watched = self.find(folder)
        if watched is None:
            listed = ", ".join(w.folder for w in self.folders()) or "none"
            raise NotFoundError(f"{folder} is not a watched folder (watched: {listed}).")
        with self.database.tx() as db:
            db.execute("delete from rag_watched_folders where folder = ?", [watched.folder])
        self._syncs.pop(watched.folder, None)
        self._status.pop(watched.folder, None)
        return watched

    def prime(self, folder: str | Path) -> None:
        """Take a listed folder as it is now as in sync (it was just ingested): its first poll
        then looks only for changes."""
        watched = self.find(folder)
        if watched is not None:
            sync = self._syncs[watched.folder] = self._sync_for(watched)
            sync.prime()

    # syncing

    def poll_once(self) -> list[SyncReport]:
        """Sync every watched folder once; a failing folder is reported, never raised."""
        reports = []
        with self._lock:
            for watched in self.folders():
                reports.append(self._poll(watched))
        return reports

    def _poll(self, watched: WatchedFolder) -> SyncReport:
        sync = self._syncs.get(watched.folder)
        first = sync is None or sync.collection != watched.collection
        if sync is None or first:
            sync = self._syncs[watched.folder] = self._sync_for(watched)
        try:
            report = sync.poll(settle=not first)
        except Exception as e:  # noqa: BLE001 - the watcher outlives any one failure
            log.exception("syncing %s failed", watched.folder)
            report = SyncReport(folder=watched.folder, problem=f"{type(e).__name__}: {e}")
        self._status[watched.folder] = _status(report, self._status.get(watched.folder, ""))
        if report.changed and self.on_report is not None:
            self.on_report(report)
        return report

    def _sync_for(self, watched: WatchedFolder) -> FolderSync:
        folder = watched.folder

        def show(progress: IngestProgress) -> None:
            self._status[folder] = f"indexing: {progress.line()}"

        return FolderSync(
            self.documents,
            Path(folder),
            watched.collection,
            on_progress=show,
            cancel=self._stop,
            images=self.images,
        )

    def start(self) -> None:
        """Poll in a daemon thread until ``stop`` (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="hearth-folder-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - e.g. the database closing under us at shutdown
                log.exception("watching folders failed; trying again")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def check_folder(folder: str | Path) -> Path:
    raw = str(folder or "").strip()
    if not raw:
        raise ConfigError("Type the path of a folder to watch.", field="folder")
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{raw}: no such folder on this machine.", field="folder")
    return path.resolve()


def _status(report: SyncReport, before: str) -> str:
    now = now_iso()[11:19]
    if report.problem:
        return f"{now} {report.problem}"
    waiting = (
        [f"{report.images_skipped} image(s) skipped: {report.image_problem}"] if report.image_problem else []
    )
    if not report.changed:
        settled = before and not before.startswith("indexing")
        return before if settled else f"{now} " + "; ".join(["in sync", *waiting])
    counts = [
        f"{sum(r.status == s for r in report.results)} {s}"
        for s in ("added", "replaced", "error")
        if any(r.status == s for r in report.results)
    ]
    counts += [f"{len(report.renamed)} renamed"] if report.renamed else []
    counts += [f"{len(report.removed)} removed"] if report.removed else []
    return f"{now} " + "; ".join([", ".join(counts), *waiting] if counts else waiting)
