"""`ingest --watch` and `watched`: the one list of watched folders (the Documents tab's) on the
command line, and Ctrl+C that stops an ingest cleanly."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.factory import Services
    from engine.rag.sync import SyncReport
    from engine.types import FileResult

#: the exit status of a command stopped by Ctrl+C (128 + SIGINT), as shells report it
INTERRUPTED = 130


@contextmanager
def ctrl_c_sets(event: threading.Event, message: str) -> Iterator[threading.Event]:
    """While inside, the first Ctrl+C sets ``event`` (the work stops at a clean point) and says
    ``message``; a second one interrupts at once. Outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def first(signum: int, frame: FrameType | None) -> None:
        event.set()
        print(f"\n{message} (Ctrl+C again to quit at once)", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    before = signal.signal(signal.SIGINT, first)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, before)


def stopped_note(results: Sequence[FileResult]) -> str:
    """What a Ctrl+C'd ingest did: how many files went in, and that the rest did not."""
    from engine.library import STOPPED

    done = [r for r in results if r.status in ("added", "replaced")]
    left = [r for r in results if r.message == STOPPED]
    return (
        f"Stopped: {len(done)} file(s) added; {len(left)} not added (nothing half-written). "
        "Run the same command again to add the rest."
    )


def watch(services: Services, paths: Sequence[Path], *, collection: str) -> int:
    """Put the folders among ``paths`` (just ingested) in the watched list and keep every listed
    folder in sync, printing each change, until Ctrl+C (0)."""
    watcher = services.documents.watcher
    folders = [Path(p).expanduser() for p in paths if Path(p).expanduser().is_dir()]
    if not folders:
        print("--watch needs at least one folder.", file=sys.stderr)
        return 2
    for folder in folders:
        already = watcher.find(folder)
        watched = watcher.add(folder, collection)
        watcher.prime(watched.folder)  # the ingest above has just handled everything there
        verb = (
            "Already watched" if already and already.collection == collection else "Added to the watched list"
        )
        print(f"{verb}: {watched.folder} -> {watched.collection}", file=sys.stderr)
    listed = ", ".join(f"{w.folder} -> {w.collection}" for w in watcher.folders())
    print(
        f"Watching {listed} (Ctrl+C to stop; the folders stay in the Documents tab's list and keep "
        "syncing while the page runs).",
        file=sys.stderr,
        flush=True,
    )
    watcher.on_report = _print_report
    stop = threading.Event()
    with ctrl_c_sets(stop, "Stopping after the file in progress…"):
        watcher.start()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            watcher.stop()  # an ingest under way stops at a clean point
    print("Stopped watching.", file=sys.stderr)
    return 0


def _print_report(report: SyncReport) -> None:
    for line in report.lines():
        print(line, flush=True)


# the `watched` command


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from engine.library import DEFAULT_COLLECTION

    p = sub.add_parser(
        "watched", help="list the watched folders (the Documents tab's list), add one, or remove one"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--add", metavar="FOLDER", type=Path, help="watch this folder (synced while the page runs)"
    )
    group.add_argument("--remove", metavar="FOLDER", type=Path, help="stop watching it (its documents stay)")
    p.add_argument("--collection", default=DEFAULT_COLLECTION, help="collection for --add")
    # listing only reads SQLite, so it also works beside a running server (read-only)
    p.set_defaults(handler=watched, reads_beside_a_server=True)


def watched(args: argparse.Namespace) -> int:
    from engine.errors import DataDirInUseError

    from .docs_cmds import _services

    try:
        services = _services(args)
    except DataDirInUseError as busy:
        if args.add is not None or args.remove is not None:
            raise
        return _watched_read_only(args, busy)
    try:
        watcher = services.documents.watcher
        if args.add is not None:
            w = watcher.add(args.add, args.collection)
            print(f"Watching {w.folder} -> {w.collection} (synced while the page or ingest --watch runs).")
        elif args.remove is not None:
            w = watcher.remove(args.remove)
            print(f"Stopped watching {w.folder}; its documents stay.")
        for w in watcher.folders():
            print(f"{w.folder}\t{w.collection}")
        return 0
    finally:
        services.close()


def _watched_read_only(args: argparse.Namespace, busy: Exception) -> int:
    """The list straight from SQLite, opened read-only: no migrations, no Chroma, no lock."""
    from engine.store.db import Database

    from . import settings_from

    database = Database.read_only(settings_from(args).db_path)
    try:
        with database.read() as db:
            rows = db.execute("select folder, collection from rag_watched_folders order by folder").fetchall()
    finally:
        database.close()
    for folder, collection in rows:
        print(f"{folder}\t{collection}")
    print(f"(read-only: {str(busy).split(':')[0]}, so nothing can be changed now)", file=sys.stderr)
    return 0
