"""The images of a watched folder, kept in the image index as its text files are kept in the
documents index: added or changed files go through ``ImageService.add_files`` (what the
Images tab uses), a file renamed or moved is followed without being read again, and a file
that is gone is removed.

CLIP is needed only to add: a folder whose images did not change never loads it, and when
it cannot load (no weights on this computer) the images are skipped with the reason, tried
again on later polls, while the folder's text files sync as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import TYPE_CHECKING

from .files import SourceFile

if TYPE_CHECKING:
    from ..types import FileResult
    from ..vision import ImageService
    from ..vision.store import StoredImage

#: the image service, when this process has one (looked up when needed, like the factory wires it)
Images = Callable[[], "ImageService | None"]

NO_IMAGES = "the Images feature is not available here"


@dataclass(kw_only=True)
class ImageOutcome:
    """What one poll did to a folder's images."""

    results: list[FileResult] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: files left for a later poll because images cannot be added now, and why
    skipped: list[SourceFile] = field(default_factory=list)
    problem: str | None = None


class FolderImages:
    """The image side of one watched folder (``FolderSync`` drives it)."""

    def __init__(self, images: Images, root: Path, collection: str):
        self.images = images
        self.root = root
        self.collection = collection

    def problem(self) -> str | None:
        """Why images cannot be added now (None: they can)."""
        service = self.images()
        return NO_IMAGES if service is None else service.index_problem()

    def known(self) -> dict[str, StoredImage]:
        """The folder's images in the index, by the resolved path of the file they came from."""
        service = self.images()
        if service is None:
            return {}
        return {r.source_path: r for r in service.in_folder(self.collection, self.root)}

    def sync(
        self,
        take: list[SourceFile],
        gone: list[StoredImage],
        hashes: dict[str, str],
        *,
        cancel: Event | None = None,
    ) -> ImageOutcome:
        """Index ``take`` (new or changed files), follow renames, remove ``gone``; ``hashes`` are
        the sha256 of the taken files' bytes, by source."""
        out = ImageOutcome()
        service = self.images()
        known = self.known()
        # bytes already indexed under this very path (e.g. the first poll after a restart): nothing to do
        take = [
            f for f in take if _resolved(f) not in known or known[_resolved(f)].sha256 != hashes[f.source]
        ]
        if service is None:
            out.skipped, out.problem = take, NO_IMAGES if take else None
            return out
        take = self._follow_renames(service, take, gone, hashes, known, out)
        problem = service.index_problem() if take else None
        if problem is not None:
            out.skipped, out.problem = take, problem
        elif take:
            out.results = service.add_files([f.path for f in take], collection=self.collection, cancel=cancel)
            self._drop_stale(service, take, known, out)
        for record in gone:
            service.delete(record.id)
            out.removed.append(record.file_name)
        return out

    def _follow_renames(
        self,
        service: ImageService,
        take: list[SourceFile],
        gone: list[StoredImage],
        hashes: dict[str, str],
        known: dict[str, StoredImage],
        out: ImageOutcome,
    ) -> list[SourceFile]:
        """A gone image whose bytes are now in a new file: moved there, not read or embedded again.
        The files still to add are returned."""
        fresh = {hashes[f.source]: f for f in take if _resolved(f) not in known}
        moved: set[str] = set()
        for record in list(gone):
            file = fresh.pop(record.sha256, None)
            if file is None:
                continue
            service.relocate(record.id, source_path=_resolved(file), file_name=file.path.name)
            gone.remove(record)
            moved.add(file.source)
            out.renamed.append((record.file_name, file.path.name))
        return [f for f in take if f.source not in moved]

    def _drop_stale(
        self, service: ImageService, take: list[SourceFile], known: dict[str, StoredImage], out: ImageOutcome
    ) -> None:
        """A changed file whose new bytes are another image's ("already in") keeps no old version."""
        for file, result in zip(take, out.results):
            old = known.get(_resolved(file))
            if result.status == "unchanged" and old is not None and old.id != result.id:
                service.delete(old.id)
                out.removed.append(old.file_name)


def _resolved(file: SourceFile) -> str:
    """How the image index names a file's source (``adding.stage``)."""
    return str(file.path.resolve())
