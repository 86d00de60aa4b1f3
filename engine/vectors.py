"""Vector storage over ChromaDB: the only module that imports chromadb.

SQLite stays the source of truth; every collection here can be rebuilt from it.
Embedded (``PersistentClient`` in the data directory) by default, or a client of a
Chroma server (``--chroma-url``) behind the same two classes. A server is accepted only
on loopback, over https, or with a token: Chroma's server API has had pre-auth
vulnerabilities, so an open one on the network is not something to send documents to.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigError, RetrievalError
from .settings import is_loopback

if TYPE_CHECKING:
    from chromadb import Collection
    from chromadb.api.types import PyEmbedding

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


@dataclass(frozen=True)
class VectorMatch:
    id: str
    #: cosine similarity in [-1, 1] (1 = same direction)
    score: float
    metadata: dict[str, Any]


def collection_name(*parts: str) -> str:
    """Build a valid Chroma collection name (3-512 chars of [a-zA-Z0-9._-])."""
    raw = "-".join(parts)
    name = re.sub(r"[^a-zA-Z0-9._-]", "_", raw).strip("._-") or "default"
    name = name[:512]
    while len(name) < 3:
        name += "_x"
    if not _NAME.match(name):
        name = "c" + name[1:-1] + "c"
    return name


def check_chroma_server(url: str, token: str | None) -> None:
    """Refuse a plain-http Chroma server beyond loopback that has no token."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not token and not is_loopback(parts.hostname or ""):
        raise ConfigError(
            f"Refusing the Chroma server at {url}: plain http beyond this machine needs a token "
            "(--chroma-token), or use https. Chroma's server API has had pre-auth vulnerabilities.",
            field="chroma_url",
        )


class VectorStore:
    """One Chroma client (embedded in the data directory, or of a server); hands out collections."""

    def __init__(self, path: Path, *, url: str | None = None, token: str | None = None):
        self.path = Path(path)
        self.url = url
        self._token = token
        if url:
            check_chroma_server(url, token)
        self._client = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """For messages and the page: the server's URL or the local directory."""
        return f"Chroma server {self.url}" if self.url else f"local index {self.path}"

    def _chroma(self):
        with self._lock:
            if self._client is None:
                try:
                    import chromadb
                    from chromadb.config import Settings as ChromaSettings
                except ImportError as e:
                    raise RetrievalError("chromadb is not installed: pip install -r requirements.txt") from e
                settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
                self._client = (
                    self._server(chromadb, settings) if self.url else self._embedded(chromadb, settings)
                )
            return self._client

    def _embedded(self, chromadb, settings):
        self.path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=settings)

    def _server(self, chromadb, settings):
        parts = urlsplit(self.url or "")
        ssl = parts.scheme == "https"
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            return chromadb.HttpClient(
                host=parts.hostname or "localhost",
                port=parts.port or (443 if ssl else 8000),
                ssl=ssl,
                headers=headers,
                settings=settings,
            )
        except Exception as e:  # connection refused, auth refused, a version mismatch: all unusable
            raise RetrievalError(
                f"Could not use the Chroma server at {self.url}: {e}. Is it running, and is the token right?"
            ) from e

    def collection(self, name: str) -> VectorCollection:
        """A cosine-space collection; created on first use. ``name`` must be valid."""
        if not _NAME.match(name):
            raise RetrievalError(f"Invalid index name {name!r}: use 3-512 characters of a-z A-Z 0-9 . _ -")
        try:
            col = self._chroma().get_or_create_collection(
                name=name, metadata={"hnsw:space": "cosine"}, embedding_function=None
            )
        except Exception as e:  # chromadb raises many types; all mean the index is unusable
            raise RetrievalError(f"Could not open the vector index {name!r}: {e}") from e
        return VectorCollection(col)

    def delete_collection(self, name: str) -> None:
        try:
            self._chroma().delete_collection(name)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass

    def close(self) -> None:
        with self._lock:
            self._client = None


class VectorCollection:
    def __init__(self, col: Collection):
        self._col = col

    def upsert(
        self, ids: Sequence[str], vectors: Sequence[Sequence[float]], metadatas: Sequence[dict[str, Any]]
    ) -> None:
        if not ids:
            return
        embeddings: list[PyEmbedding] = [list(map(float, v)) for v in vectors]
        try:
            self._col.upsert(
                ids=list(ids),
                embeddings=embeddings,
                metadatas=[_clean(m) for m in metadatas],
            )
        except Exception as e:
            raise RetrievalError(f"Could not write to the vector index: {e}") from e

    def delete(self, *, ids: Sequence[str] | None = None, where: dict[str, Any] | None = None) -> None:
        if ids is not None and not ids:
            return
        try:
            self._col.delete(ids=list(ids) if ids is not None else None, where=where)
        except Exception as e:
            raise RetrievalError(f"Could not delete from the vector index: {e}") from e

    def query(
        self, vector: Sequence[float], k: int, where: dict[str, Any] | None = None, *, metadata: bool = True
    ) -> list[VectorMatch]:
        """The ``k`` nearest, best first; ``metadata=False``: ids and scores only (a caller that
        reads its rows from SQLite; Chroma answers about 30% sooner)."""
        if k <= 0:
            return []
        query: list[PyEmbedding] = [list(map(float, vector))]
        include: list[Any] = ["metadatas", "distances"] if metadata else ["distances"]
        try:
            # no count() first: Chroma returns what it has when asked for more (or none), and a
            # count took longer than the search itself in a memory turn's profile
            res = self._col.query(query_embeddings=query, n_results=k, where=where, include=include)
        except Exception as e:
            raise RetrievalError(f"Vector search failed: {e}") from e
        distances = res["distances"]
        metadatas = res["metadatas"] if metadata else [[None] * len(res["ids"][0])]
        if distances is None or metadatas is None:  # asked for in ``include``
            raise RetrievalError("Vector search returned no distances.")
        return [
            VectorMatch(id=i, score=1.0 - float(d), metadata=dict(m or {}))
            for i, d, m in zip(res["ids"][0], distances[0], metadatas[0])
        ]

    def vectors(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """Stored vectors by id (ids not in the collection are left out)."""
        if not ids:
            return {}
        try:
            res = self._col.get(ids=list(ids), include=["embeddings"])
        except Exception as e:
            raise RetrievalError(f"Could not read the vector index: {e}") from e
        embeddings = res["embeddings"]
        if embeddings is None:  # asked for in ``include``
            raise RetrievalError("The vector index returned no vectors.")
        return {i: [float(x) for x in v] for i, v in zip(res["ids"], embeddings)}

    def ids(self, where: dict[str, Any] | None = None) -> list[str]:
        try:
            return list(self._col.get(where=where, include=[])["ids"])
        except Exception as e:  # a Chroma server that went away, mostly
            raise RetrievalError(f"Could not read the vector index: {e}") from e

    def count(self) -> int:
        try:
            return int(self._col.count())
        except Exception as e:
            raise RetrievalError(f"Could not read the vector index: {e}") from e


def _clean(meta: dict[str, Any]) -> dict[str, Any]:
    """Chroma metadata values must be str, int, float or bool (no None)."""
    return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
