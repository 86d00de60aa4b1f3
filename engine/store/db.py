"""Open the SQLite database (WAL mode) and apply named migrations.

SQLite is the source of truth for everything Hearth keeps; vector indexes are
rebuilt from it. One connection is shared by the app's threads, guarded by a lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from ..errors import StoreError
from .datadir import private_file, tighten


class _Tables(sqlite_utils.Database):
    """sqlite-utils with no views: Hearth's migrations create none, so ``db[name]`` need not
    ask SQLite for the view names before every table it hands out (about 20 queries a chat
    turn). tests/test_store checks that the schema still has no view."""

    def view_names(self) -> list[str]:
        return []


class Database:
    """A sqlite-utils database plus the lock that serialises access to it."""

    db: sqlite_utils.Database

    def __init__(self, path: Path | str, migration_sets: Iterable[Migrations]):
        self.path = Path(path)
        try:
            on_disk = str(path) != ":memory:"
            if on_disk:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # created 0600 before SQLite opens it: SQLite gives -wal and -shm the same mode
                private_file(self.path)
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self.db = _Tables(conn)
            self.lock = threading.RLock()
            for migrations in migration_sets:
                migrations.apply(self.db)
            if on_disk:  # files left by an older Hearth that did not protect them
                for suffix in ("-wal", "-shm"):
                    tighten(self.path.with_name(self.path.name + suffix))
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"Could not open the database at {path}: {e}. If the file is damaged, "
                "move it aside and Hearth will start a new one."
            ) from e

    @classmethod
    def read_only(cls, path: Path | str) -> Database:
        """An existing database opened for reading only, without migrations: what a command may
        do while another process holds the data directory (in WAL mode readers run beside the
        one writer, each seeing the last committed state)."""
        self = cls.__new__(cls)
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"There is no database at {self.path} yet.")
        try:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30, isolation_level=None)
            conn.execute("PRAGMA query_only=ON")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"Could not open the database at {self.path} for reading: {e}.") from e
        self.db = _Tables(conn)
        self.lock = threading.RLock()
        return self

    @contextmanager
    def tx(self) -> Iterator[sqlite_utils.Database]:
        """Run a block atomically, holding the lock."""
        with self.lock:
            try:
                with self.db.atomic():
                    yield self.db
            except sqlite3.Error as e:
                raise StoreError(f"Database write failed: {e}") from e

    @contextmanager
    def read(self) -> Iterator[sqlite_utils.Database]:
        with self.lock:
            try:
                yield self.db
            except sqlite3.Error as e:
                raise StoreError(f"Database read failed: {e}") from e

    def close(self) -> None:
        with self.lock:
            self.db.conn.close()
