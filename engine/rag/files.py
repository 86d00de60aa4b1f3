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
from ..library import is_image

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
    #: the folder a walk found it in: it must still resolve inside it when read
    root: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A folder entry deliberately left out (a link leading out of the folder), reported as such."""

    given: str
    message: str


#: what ``expand`` yields per entry: a file to read, a reason it cannot be, or a deliberate skip
Entry = SourceFile | tuple[str, IngestError] | Skipped


def clean_name(name: str) -> str:
    """A display name: the last path part, without control characters, at most 200 chars."""
    last = re.split(r"[\\/]", name.strip())[-1]
    last = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in last)
    last = " ".join(last.split()).strip(". ") or "unnamed"
    return last if len(last) <= MAX_NAME else last[: MAX_NAME - 3] + "..."


def expand(paths: Sequence[Path | str], names: Sequence[str] | None = None) -> list[Entry]:
    """Files to ingest, in order; folders are walked (hidden entries skipped, and links that
    lead out of the folder or to folders skipped and reported: a folder of notes must never
    pull in ``~/.ssh/id_rsa`` through ``notes.txt -> ~/.ssh/id_rsa``).

    ``names`` (one per path) overrides the display name and the identity, for uploads
    whose temporary paths mean nothing to the user.
    """
    out: list[Entry] = []
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


def _walk(folder: Path) -> list[SourceFile | Skipped]:
    root = folder.resolve()
    found: list[SourceFile | Skipped] = []
    # os.walk's order (top-down, sorted), but with a list rather than recursion: Python 3.11's
    # os.walk recurses, and a folder about 1,000 levels deep overflowed the stack
    pending = [root]
    while pending:
        here = pending.pop()
        dirnames, filenames = _listing(here)
        wanted = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        linked = [d for d in wanted if (here / d).is_symlink()]  # not followed: no loops
        found += [_skip(here / d, root, LINKED_FOLDER) for d in linked]
        pending += [here / d for d in reversed(wanted) if d not in linked]
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            path = here / filename
            if path.is_symlink() and not _inside(path, root):
                found.append(_skip(path, root, LINK_OUTSIDE))
            elif path.is_file():
                found.append(
                    SourceFile(
                        path=path, source=str(path), name=_shown(path, root), given=str(path), root=root
                    )
                )
    return found


def _listing(folder: Path) -> tuple[list[str], list[str]]:
    """A folder's subfolders and other entries, as os.walk splits them; an unreadable folder
    (gone, no permission, a path too long) has none, as os.walk skips it."""
    try:
        with os.scandir(folder) as entries:
            listed = [(e.name, e.is_dir()) for e in entries]
    except OSError:
        return [], []
    return [n for n, is_dir in listed if is_dir], [n for n, is_dir in listed if not is_dir]


LINK_OUTSIDE = "skipped: link outside the folder (only files inside the folder you chose are read)."
LINKED_FOLDER = "skipped: a link to a folder (linked folders are not followed)."


def _skip(path: Path, root: Path, why: str) -> Skipped:
    return Skipped(given=str(path), message=f"{_shown(path, root)}: {why}")


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (a link, perhaps to a link) ends up inside ``root``."""
    try:
        return path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):  # broken link or a loop
        return False


def _shown(path: Path, root: Path) -> str:
    return _clean_relative(path.relative_to(root.parent).as_posix())


def _clean_relative(relative: str) -> str:
    return "/".join(clean_name(part) for part in relative.split("/"))


def split_images(files: list) -> tuple[list[SourceFile], list]:
    """(images, everything else) for routing images to the Images feature."""
    images = [f for f in files if isinstance(f, SourceFile) and is_image(f.path)]
    rest = [f for f in files if not (isinstance(f, SourceFile) and is_image(f.path))]
    return images, rest


def read_limited(file: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes; refuses empty files and files over ``max_bytes``."""
    if file.root is not None and not _inside(file.path, file.root):  # became a link since the walk
        raise IngestError(f"{file.name}: skipped: it now leads outside the folder {file.root}.")
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
