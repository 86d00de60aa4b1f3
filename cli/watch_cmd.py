"""`ingest --watch`: keep folders in sync with a collection until Ctrl-C."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine.rag.sync import FolderSync
from engine.rag.watch import DEFAULT_INTERVAL


def watch(services, paths: Sequence[Path], *, collection: str, interval: float = DEFAULT_INTERVAL) -> int:
    """Poll the folders among ``paths`` (just ingested) and print each change; 0 on Ctrl-C."""
    folders = [p for p in paths if Path(p).expanduser().is_dir()]
    if not folders:
        print("--watch needs at least one folder.", file=sys.stderr)
        return 2
    syncs = [FolderSync(services.documents, Path(p), collection) for p in folders]
    for sync in syncs:
        sync.prime()  # the ingest above has just handled everything there
    names = ", ".join(str(s.root) for s in syncs)
    print(f"Watching {names} (Ctrl-C to stop).", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(interval)
            for sync in syncs:
                _poll(sync)
    except KeyboardInterrupt:
        print("Stopped watching.", file=sys.stderr)
        return 0


def _poll(sync: FolderSync) -> None:
    try:
        report = sync.poll()
    except Exception as e:  # noqa: BLE001 - one bad poll must not end the watch
        print(f"{sync.root}: this check failed ({type(e).__name__}: {e}); trying again.", file=sys.stderr)
        return
    for line in report.lines():
        print(line, flush=True)
