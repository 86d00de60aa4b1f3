"""ImageService: add images to collections, search them by text or by example, label them.

SQLite holds one row per image and the data directory a copy of each file; the
vectors live in a Chroma collection named after the CLIP weights, rebuilt from the
stored copies when the model changes. CLIP loads on the first call that needs it;
listing, deleting and chats without images never load it.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ConfigError, EngineError, VisionError
from ..library import DEFAULT_COLLECTION, STOPPED, check_collection_name
from ..store import Database, StoredConversation
from ..turn import Contribution, Turn
from ..types import FileResult, Hit
from ..vectors import VectorCollection, VectorStore, collection_name
from .adding import Prepared, collect, commit, display_name, prepare, stage, with_path
from .chunks import ClipChunkIndex
from .clip import ClipConfig, ClipEmbedder
from .labels import clean_labels, zero_shot
from .loading import read_image
from .store import ImageRecords, StoredImage

if TYPE_CHECKING:
    from ..rag import DocumentService


log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: images shown with a chat answer, at most
CHAT_K = 3


class ImageService:
    def __init__(
        self,
        *,
        database: Database,
        vectors: VectorStore,
        embedder: ClipEmbedder,
        files_dir: Path,
        max_upload_bytes: int,
        chat_min_score: float = 0.24,
        documents: Callable[[], DocumentService | None] = lambda: None,
        workers: int | None = None,
    ):
        self.records = ImageRecords(database, Path(files_dir) / "images")
        self.vectors = vectors
        self.embedder = embedder
        self.max_upload_bytes = max_upload_bytes
        self.chat_min_score = chat_min_score
        self.chunks = ClipChunkIndex(vectors, embedder, documents)
        # decoding and resizing run in threads beside the encoder (Pillow releases the GIL)
        self.workers = workers or max(2, min(8, os.cpu_count() or 2))
        self._synced = False
        self._sync_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        database: Database,
        vectors: VectorStore,
        documents: Callable[[], DocumentService | None],
    ) -> ImageService:
        config = ClipConfig(
            model=settings.clip_model,
            pretrained=settings.clip_pretrained,
            device=settings.clip_device,
            batch_size=settings.clip_batch_size,
        )
        return cls(
            database=database,
            vectors=vectors,
            embedder=ClipEmbedder(config),
            files_dir=settings.files_dir,
            max_upload_bytes=settings.max_upload_bytes,
            chat_min_score=settings.clip_chat_min_score,
            documents=documents,
        )

    # status

    def available(self) -> tuple[bool, str]:
        """Whether CLIP can load, and if not exactly what is missing and how to provide it."""
        if self.embedder.loaded:
            return True, f"{self.embedder.load()}; {self.records.count()} images indexed."
        try:
            plan = self.embedder.plan()
        except VisionError as e:
            return False, str(e)
        if self.embedder.recent_failure:  # the files are there but would not load
            return False, self.embedder.recent_failure
        label = self.embedder.config.label
        if plan.downloads:
            return (
                True,
                f"CLIP {label} will be downloaded from {plan.source} the first time an image feature is used.",
            )
        return (
            True,
            f"CLIP {label} is ready at {plan.source}; it loads the first time an image feature is used.",
        )

    def index_problem(self) -> str | None:
        """Why images cannot be added now without a download (None: CLIP is loaded and ready).
        For work nobody is watching (a watched folder): it never starts a CLIP download."""
        if not self.embedder.loaded:
            try:
                plan = self.embedder.plan()
            except VisionError as e:
                return str(e)
            if plan.downloads:
                return (
                    f"the CLIP weights are not on this computer yet (they come from {plan.source}); add "
                    "one image in the Images tab to download them, and the folder's images follow."
                )
        try:
            self._ready()
        except VisionError as e:
            return str(e)
        return None

    def list(self, collection: str | None = None) -> list[StoredImage]:
        return self.records.list([collection] if collection else None)

    def collections(self) -> builtins.list[str]:
        return self.records.collections()

    # adding

    def add_files(
        self,
        paths: Sequence[Path | str],
        *,
        collection: str = DEFAULT_COLLECTION,
        progress: Progress | None = None,
        captions: dict[str, str] | None = None,
        cancel: threading.Event | None = None,
    ) -> builtins.list[FileResult]:
        """Add image files; one FileResult per path, in order. Bad files never stop the batch.

        ``captions`` maps a path (as given) to text found near the image (alt text, a caption).
        Once ``cancel`` is set, the batches not started are left out ("skipped").
        """
        items = [Path(p) for p in paths]
        collection = check_collection_name(collection)
        if cancel is not None and cancel.is_set():  # stopped before the images: do not even load CLIP
            return [_stopped(p) for p in items]
        try:
            self._ready()
        except VisionError as e:
            return _report([FileResult(path=str(p), status="error", message=str(e)) for p in items], progress)
        captions = {str(Path(k)): v for k, v in (captions or {}).items()}
        results: list[FileResult | None] = [None] * len(items)
        step = max(1, self.embedder.config.batch_size)
        batches = [list(range(i, min(i + step, len(items)))) for i in range(0, len(items), step)]
        done = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hearth-image") as pool:
            submit = lambda batch: [  # noqa: E731
                pool.submit(self._prepare, items[i], collection, captions.get(str(items[i]), ""))
                for i in batch
            ]
            pending = submit(batches[0]) if batches else []
            for number, batch in enumerate(batches):
                if cancel is not None and cancel.is_set():
                    collect(pending)  # let the threads finish; nothing of theirs is stored
                    break
                prepared = collect(pending)
                pending = submit(batches[number + 1]) if number + 1 < len(batches) else []
                for index, outcome in zip(batch, self._store_batch(prepared, collection)):
                    results[index] = outcome
                    done += 1
                    if progress:
                        progress(done, len(items), items[index].name)
        return [r or _stopped(items[i]) for i, r in enumerate(results)]

    def _prepare(self, path: Path, collection: str, caption: str) -> Prepared | FileResult:
        return prepare(
            path,
            collection,
            caption,
            records=self.records,
            embedder=self.embedder,
            max_bytes=self.max_upload_bytes,
        )

    def _store_batch(
        self, prepared: builtins.list[Prepared | FileResult], collection: str
    ) -> builtins.list[FileResult]:
        ready = [p for p in prepared if isinstance(p, Prepared)]
        try:
            vectors = iter(self.embedder.embed_tensors([p.tensor for p in ready]))
        except (VisionError, RuntimeError) as e:  # e.g. out of GPU memory: report, keep going
            failed = FileResult(path="", status="error", message=f"CLIP failed on this batch: {e}")
            return [p if isinstance(p, FileResult) else with_path(failed, p.path) for p in prepared]
        with self._write_lock:
            staged = [
                stage(p, next(vectors), collection, self.records) if isinstance(p, Prepared) else p
                for p in prepared
            ]
            return commit(staged, collection, records=self.records, index=self._index, remove=self._remove)

    # searching

    def search_text(self, query: str, *, k: int = 8, collection: str | None = None) -> builtins.list[Hit]:
        if not query or not query.strip():
            raise ConfigError("Type what the images should show.", field="query")
        vector = self._ready().embed_texts([query.strip()])[0]
        return self._search(vector, k, [collection] if collection else None)

    def search_image(self, path: Path, *, k: int = 8, collection: str | None = None) -> builtins.list[Hit]:
        self._ready()
        return self._search(self._embed_file(Path(path)), k, [collection] if collection else None)

    def classify(self, path: Path, labels: Iterable[str]) -> builtins.list[tuple[str, float]]:
        """Zero-shot labels: (label, probability) best first; probabilities sum to 1."""
        names = clean_labels(labels)
        self._ready()
        return zero_shot(self.embedder, self._embed_file(Path(path)), names)

    def related_to_image(self, path: Path, k: int = 6) -> dict[str, Any]:
        """For an image attached to a chat message: the most similar stored images and
        the document chunks closest to it in CLIP space."""
        path = Path(path)
        embedder = self._ready()
        loaded = read_image(path, max_bytes=self.max_upload_bytes, decode_size=embedder.image_size)
        vector = embedder.embed_tensors([embedder.preprocess(loaded.image)])[0]
        note = (
            ""
            if self.chunks.available()
            else "No documents service is running, so no passages were compared."
        )
        chunks: list[Hit] = []
        try:
            chunks = self.chunks.search(vector, k)
        except EngineError as e:
            note = f"Passages could not be compared: {e}"
        return {
            "file_name": path.name,
            "width": loaded.width,
            "height": loaded.height,
            "caption": loaded.caption,
            "images": self._search(vector, k, None),
            "chunks": chunks,
            "note": note,
        }

    @property
    def provider_name(self) -> str:
        return "images"

    def contribute(self, turn: Turn) -> Contribution:
        """This turn's images (engine/turn.py); if CLIP cannot load, the chat goes on without them."""
        try:
            hits = self.retrieve_for_chat(turn.query, turn.conversation)
        except EngineError as e:
            log.warning("images unavailable this turn: %s", e)
            return Contribution(source=self.provider_name, error=str(e))
        return Contribution(source=self.provider_name, hits=tuple(hits))

    def retrieve_for_chat(self, query: str, conversation: StoredConversation) -> builtins.list[Hit]:
        """Images relevant to a chat turn. Collections without images cost nothing (CLIP is not
        loaded); raises VisionError when CLIP or the index cannot be used."""
        collections = list(conversation.collections) or None
        if not query.strip() or self.records.count(collections) == 0:
            return []
        vector = self._ready().embed_texts([query])[0]
        hits = self._search(vector, CHAT_K, collections)
        return [h for h in hits if h.score >= self.chat_min_score]

    # deleting

    def delete(self, image_id: str) -> None:
        """Remove an image everywhere: its vector, its row and its stored copy."""
        self._remove(self.records.get(image_id))

    def _remove(self, record: StoredImage) -> None:
        self._index().delete(ids=[record.id])
        self.records.delete_row(record.id)
        self.records.remove_file(record.path.name)

    def in_folder(self, collection: str, folder: Path) -> builtins.list[StoredImage]:
        """The images of ``collection`` added from files inside ``folder``."""
        return self.records.in_folder(collection, folder)

    def relocate(self, image_id: str, *, source_path: str, file_name: str) -> None:
        """An added file was renamed or moved: follow it, without reading or embedding it again."""
        record = self.records.get(image_id)
        self.records.move(image_id, source_path=source_path, file_name=display_name(file_name))
        vector = self._index().vectors([image_id]).get(image_id)
        if vector is not None:  # the metadata names the file too
            meta = {"collection": record.collection, "file_name": display_name(file_name)}
            self._index().upsert([image_id], [vector], [meta])

    def close(self) -> None:
        self.embedder.close()

    # internals

    def _index(self) -> VectorCollection:
        return self.vectors.collection(collection_name("images", self.embedder.config.key))

    def _ready(self) -> ClipEmbedder:
        """Load CLIP, and once per run bring this model's index in line with SQLite."""
        self.embedder.load()
        if not self._synced:
            with self._sync_lock:
                if not self._synced:
                    self._sync_index()
                    self._synced = True
        return self.embedder

    def _sync_index(self) -> None:
        index = self._index()
        rows = self.records.ids()
        indexed = set(index.ids())
        index.delete(ids=sorted(indexed - rows))
        missing = self.records.get_many(sorted(rows - indexed))
        for record in missing.values():  # after a model change: re-embed the stored copies
            try:
                vector = self._embed_file(record.path)
            except VisionError as e:
                log.warning("%s could not be re-indexed: %s", record.file_name, e)
                continue
            index.upsert(
                [record.id], [vector], [{"collection": record.collection, "file_name": record.file_name}]
            )

    def _embed_file(self, path: Path) -> builtins.list[float]:
        """Callers load CLIP first (``_ready``); the index sync calls this while loading."""
        loaded = read_image(path, max_bytes=self.max_upload_bytes, decode_size=self.embedder.image_size)
        return self.embedder.embed_tensors([self.embedder.preprocess(loaded.image)])[0]

    def _search(
        self, vector: builtins.list[float], k: int, collections: builtins.list[str] | None
    ) -> builtins.list[Hit]:
        if k <= 0:
            return []
        where = None
        if collections:
            where = (
                {"collection": collections[0]}
                if len(collections) == 1
                else {"collection": {"$in": collections}}
            )
        matches = self._index().query(vector, k, where)
        records = self.records.get_many([m.id for m in matches])
        return [_hit(records[m.id], m.score) for m in matches if m.id in records]


def _hit(record: StoredImage, score: float) -> Hit:
    return Hit(
        kind="image",
        id=record.id,
        text=record.description,
        score=score,
        source=record.file_name,
        meta={
            "path": str(record.path),
            "collection": record.collection,
            "width": record.width,
            "height": record.height,
            "caption": record.caption,
        },
    )


def _stopped(path: Path) -> FileResult:
    return FileResult(path=str(path), status="skipped", message=STOPPED)


def _report(results: list[FileResult], progress: Progress | None) -> list[FileResult]:
    if progress:
        for i, r in enumerate(results, 1):
            progress(i, len(results), Path(r.path).name)
    return results
