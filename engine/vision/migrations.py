"""The ``hearth.vision`` schema: one row per stored image.

The image file itself is a copy under ``<data dir>/files/images/<id><ext>``; vectors
live in Chroma (one collection per CLIP model) and are rebuilt from these rows.
Never edit a migration that has shipped; add a new one.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

vision = Migrations("hearth.vision")


@vision(name="0001_images")
def _images(db: Database) -> None:
    db.table("images").create(
        {
            "id": str,
            "collection": str,
            "file_name": str,  # the name the user gave the file (display only, never a path)
            "source_path": str,  # where it was added from, to notice a changed file on re-ingest
            "stored_name": str,  # generated file name inside the data directory
            "sha256": str,
            "format": str,
            "width": int,
            "height": int,
            "bytes": int,
            "caption": str,  # caption, alt text or text embedded in the file
            "created_at": str,
        },
        pk="id",
    )
    db.table("images").create_index(["collection", "sha256"])
    db.table("images").create_index(["collection", "source_path"])
