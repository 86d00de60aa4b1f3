"""Rules that documents and images share, in one place so that the two services, the page
and the command line can never disagree: the default collection, what a collection may be
called, and which files are images."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

#: the collection files go to when none is named; it always exists and cannot be deleted
DEFAULT_COLLECTION = "library"
MAX_COLLECTION_NAME = 64
#: file names routed to the image index (Pillow decodes these; GIFs by their first frame)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"})
#: the message of a file left out ("skipped") because its ingest was stopped (Stop, Ctrl+C)
STOPPED = "skipped: the ingest was stopped before this file; add it again to finish."


def check_collection_name(name: str) -> str:
    """1-64 characters of letters, digits, spaces and ``_ - .``; returned stripped.

    Collection names show up in the page, in file listings and in SQLite keyword queries, so
    both documents and images keep to this one conservative alphabet.
    """
    clean = (name or "").strip()
    ok = 0 < len(clean) <= MAX_COLLECTION_NAME and all(ch.isalnum() or ch in " _-." for ch in clean)
    if not ok:
        raise ConfigError(
            f"Invalid collection name {name!r}: use 1-{MAX_COLLECTION_NAME} letters, digits, spaces, "
            "'_', '-' or '.'.",
            field="collection",
        )
    return clean


def offered_collections(names: list[str]) -> list[str]:
    """Collections to offer for adding files: the default one first when it is not there yet
    (an image collection exists only once it holds an image)."""
    return names if DEFAULT_COLLECTION in names else [DEFAULT_COLLECTION, *names]


def is_image(path: Path | str) -> bool:
    """Whether a file goes to the image index, by its name."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
