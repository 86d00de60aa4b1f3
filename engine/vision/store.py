"""Image rows in SQLite and image files in the data directory.

Stored copies get generated names (``<uuid hex><ext>``) inside one folder, so nothing a
user names can place a file anywhere else. Files are written to a temporary name and
renamed, so a crash never leaves a half-written image under a real name.
"""

from __future__ import annotations

import builtins
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from ..store import Database


@dataclass(frozen=True, kw_only=True)
class StoredImage:
    id: str
    collection: str
    file_name: str
    source_path: str
    #: absolute path of the stored copy in the data directory
    path: Path
    sha256: str
    format: str
    width: int
    height: int
    bytes: int
    caption: str
    created_at: str

    @property
    def description(self) -> str:
        """What the model and the user read about this image: its name and any text near it."""
        return f"Image file: {self.file_name}" + (
            f"\nCaption / nearby text: {self.caption}" if self.caption else ""
        )


class ImageRecords:
    def __init__(self, database: Database, folder: Path):
        self.database = database
        self.folder = Path(folder)

    # files

    def write_file(self, data: bytes, extension: str) -> tuple[str, Path]:
        """Store ``data`` under a new generated name; return (id, path)."""
        image_id = uuid.uuid4().hex
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.folder / f"{image_id}{extension}"
        partial = self.folder / f".{image_id}.partial"
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)  # private copy
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        return image_id, final

    def remove_file(self, stored_name: str) -> None:
        (self.folder / Path(stored_name).name).unlink(missing_ok=True)

    # rows

    def insert(self, row: dict[str, Any]) -> StoredImage:
        row = {**row, "created_at": datetime.now(UTC).isoformat(timespec="milliseconds")}
        with self.database.tx() as db:
            db.table("images").insert(row)
        return self._image(row)

    def get(self, image_id: str) -> StoredImage:
        with self.database.read() as db:
            rows = list(db["images"].rows_where("id = ?", [image_id]))
        if not rows:
            raise NotFoundError(f"There is no image with id {image_id!r}; it may have been deleted.")
        return self._image(rows[0])

    def get_many(self, ids: list[str]) -> dict[str, StoredImage]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self.database.read() as db:
            rows = db["images"].rows_where(f"id in ({marks})", ids)
            return {row["id"]: self._image(row) for row in rows}

    def find(
        self, collection: str, *, sha256: str | None = None, source_path: str | None = None
    ) -> StoredImage | None:
        column, value = ("sha256", sha256) if sha256 is not None else ("source_path", source_path)
        with self.database.read() as db:
            rows = list(
                db["images"].rows_where(f"collection = ? and {column} = ?", [collection, value], limit=1)
            )
        return self._image(rows[0]) if rows else None

    def list(self, collections: list[str] | None = None) -> list[StoredImage]:
        where, args = _in_collections(collections)
        with self.database.read() as db:
            rows = db["images"].rows_where(where, args, order_by="created_at, id")
            return [self._image(row) for row in rows]

    def count(self, collections: builtins.list[str] | None = None) -> int:
        where, args = _in_collections(collections)
        with self.database.read() as db:
            return int(db.execute(f"select count(*) from images where {where or '1'}", args).fetchone()[0])

    def ids(self) -> set[str]:
        with self.database.read() as db:
            return {row[0] for row in db.execute("select id from images").fetchall()}

    def collections(self) -> builtins.list[str]:
        with self.database.read() as db:
            return [
                r[0]
                for r in db.execute("select distinct collection from images order by collection").fetchall()
            ]

    def in_folder(self, collection: str, folder: Path) -> builtins.list[StoredImage]:
        """The images of ``collection`` added from files inside ``folder`` (an absolute path)."""
        inside = str(folder).rstrip("/") + "/"
        return [i for i in self.list([collection]) if i.source_path.startswith(inside)]

    def move(self, image_id: str, *, source_path: str, file_name: str) -> None:
        """Point a row at the file's new place (a rename): nothing is read or embedded again."""
        with self.database.tx() as db:
            db.table("images").update(image_id, {"source_path": source_path, "file_name": file_name})

    def delete_row(self, image_id: str) -> None:
        with self.database.tx() as db:
            db.table("images").delete_where("id = ?", [image_id])

    def _image(self, row: dict[str, Any]) -> StoredImage:
        return StoredImage(
            id=row["id"],
            collection=row["collection"],
            file_name=row["file_name"] or "",
            source_path=row["source_path"] or "",
            path=self.folder / row["stored_name"],
            sha256=row["sha256"],
            format=row["format"],
            width=row["width"],
            height=row["height"],
            bytes=row["bytes"],
            caption=row["caption"] or "",
            created_at=row["created_at"],
        )


def _in_collections(collections: list[str] | None) -> tuple[str | None, list[str]]:
    if not collections:
        return None, []
    return f"collection in ({','.join('?' * len(collections))})", list(collections)
