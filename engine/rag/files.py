"""Which files an ingest covers: folders expanded, names cleaned, sizes checked.

Nothing here writes anywhere: a file's name is only ever shown and cited, never used
as a path, so a name like ``../../etc/passwd`` is harmless (it is shown as ``passwd``).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import IngestError
from .loaders import is_image

#: folders never worth indexing (version control, caches, dependencies)
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "venv", ".venv", "site-packages"})
MAX_NAME = 200


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    path: Path
    #: identity within a collection: re-adding the same source replaces its old version
    source: str
    #: shown to the user and cited
    name: str
    #: what the caller passed (for result messages)
    given: str
    #: an upload name that had to be cleaned (path parts, control characters)
    renamed: bool = False


def clean_name(name: str) -> str:
    """A display name: the last path part, without control characters, at most 200 chars."""
    last = re.split(r"[\\/]", name.strip())[-1]
    last = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in last)
    last = " ".join(last.split()).strip(". ") or "unnamed"
    return last if len(last) <= MAX_NAME else last[: MAX_NAME - 3] + "..."


def expand(
    paths: Sequence[Path | str], names: Sequence[str] | None = None
) -> list[SourceFile | tuple[str, IngestError]]:
    """Files to ingest, in order; folders are walked (hidden entries skipped).

    ``names`` (one per path) overrides the display name and the identity, for uploads
    whose temporary paths mean nothing to the user.
    """
    out: list[SourceFile | tuple[str, IngestError]] = []
    for i, raw in enumerate(paths):
        given = str(raw)
        path = Path(raw).expanduser()
        upload_name = names[i] if names is not None and i < len(names) and names[i] else None
        if path.is_dir():
            out.extend(_walk(path))
        elif not path.exists():
            out.append((given, IngestError(f"{given}: no such file or folder.")))
        elif not path.is_file():
            out.append((given, IngestError(f"{given}: not a regular file (a device, pipe or socket?).")))
        elif upload_name is not None:
            name = clean_name(upload_name)
            out.append(
                SourceFile(path=path, source=name, name=name, given=upload_name, renamed=name != upload_name)
            )
        else:
            resolved = path.resolve()
            out.append(SourceFile(path=path, source=str(resolved), name=clean_name(path.name), given=given))
    return out


def _walk(folder: Path) -> list[SourceFile]:
    root = folder.resolve()
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow links: no loops
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            path = Path(dirpath) / filename
            if not path.is_file():
                continue
            relative = path.relative_to(root.parent).as_posix()
            found.append(
                SourceFile(path=path, source=str(path), name=_clean_relative(relative), given=str(path))
            )
    return found


def _clean_relative(relative: str) -> str:
    return "/".join(clean_name(part) for part in relative.split("/"))


def split_images(files: list) -> tuple[list[SourceFile], list]:
    """(images, everything else) for routing images to the Images feature."""
    images = [f for f in files if isinstance(f, SourceFile) and is_image(f.path)]
    rest = [f for f in files if not (isinstance(f, SourceFile) and is_image(f.path))]
    return images, rest


def read_limited(file: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes; refuses empty files and files over ``max_bytes``."""
    try:
        size = file.path.stat().st_size
        if size == 0:
            raise IngestError(f"{file.name}: the file is empty (0 bytes); there is nothing to index.")
        if size > max_bytes:
            raise IngestError(
                f"{file.name}: {size / 2**20:,.1f} MB is over the {max_bytes / 2**20:,.0f} MB limit. Split it, "
                "or raise the limit (--max-upload-mb, or max_upload_bytes in the settings)."
            )
        with file.path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as e:
        raise IngestError(
            f"{file.name}: cannot be read ({e.strerror or e}). Check that it exists and that you may read it."
        ) from e
    if len(data) > max_bytes:
        raise IngestError(f"{file.name}: over the {max_bytes / 2**20:,.0f} MB limit.")
    return data
