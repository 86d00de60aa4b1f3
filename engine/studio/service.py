"""The studio's engine side: records each answer's provenance and token trace, and answers the
next-token view's questions (which stages, which candidates) with typed errors when it cannot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends.base import Backend
from ..config import GenerationConfig
from ..errors import ModelError, NotFoundError
from ..models import ModelManager
from .provenance import HEARTH_VERSION, FileHasher

if TYPE_CHECKING:
    from ..backends.llama_cpp import LlamaCppBackend
    from .chain_view import PositionView
from .store import Provenance, StudioStore
from .trace import TokenTrace


@dataclass(frozen=True, kw_only=True)
class AnswerTokens:
    """An answer's tokens as the loaded model spells them, and its trace."""

    pieces: list[str]
    trace: TokenTrace
    config: GenerationConfig


class StudioService:
    def __init__(self, *, store: StudioStore, models: ModelManager):
        self.store = store
        self.models = models
        self.hasher = FileHasher(store)

    def start_hashing(self) -> None:
        """Hash the loaded model file in the background (cached per size and mtime)."""
        info = self.models.info
        if info is not None and info.backend == "llama.cpp" and Path(info.path).is_file():
            self.hasher.lookup(info.path)

    def traced(self, backend: Backend) -> tuple[LlamaCppBackend, TokenTrace] | None:
        """The backend as one that can record a trace (the in-process model) and a trace for the
        next answer; None for others."""
        from ..backends.llama_cpp import LlamaCppBackend

        return (backend, TokenTrace()) if isinstance(backend, LlamaCppBackend) else None

    def record(
        self, message_id: str, backend: Backend, config: GenerationConfig, trace: TokenTrace | None
    ) -> None:
        info = backend.info
        local = info.backend == "llama.cpp"
        size, mtime_ns, sha = self.hasher.lookup(info.path) if local else (0, 0, None)
        provenance = Provenance(
            message_id=message_id,
            model_path=info.path,
            model_size=size,
            model_mtime_ns=mtime_ns,
            model_sha256=sha,
            template_sha256=info.template_sha256,
            seed=config.seed,
            hearth_version=HEARTH_VERSION,
            backend=info.backend,
        )
        self.store.save(provenance, trace)

    def details(self, message_id: str) -> Provenance | None:
        return self.store.provenance(message_id)

    def answer_tokens(self, message_id: str, config: GenerationConfig) -> AnswerTokens:
        """The answer's tokens, when its trace exists and the loaded model is the one that wrote it."""
        trace = self.store.trace(message_id)
        provenance = self.store.provenance(message_id)
        if trace is None or provenance is None:
            raise NotFoundError(
                "This answer has no next-token data: it was written before Hearth recorded it, "
                "by a remote model or with an image. Regenerate it to inspect it."
            )
        backend = self._same_model(provenance)
        pieces = [p.decode("utf-8", errors="replace") for p in backend.token_pieces(trace.ids)]
        return AnswerTokens(pieces=pieces, trace=trace, config=config)

    def position(
        self, tokens: AnswerTokens, index: int, config: GenerationConfig | None = None
    ) -> PositionView:
        if not 0 <= index < len(tokens.trace):
            raise NotFoundError(f"The answer has {len(tokens.trace)} tokens; there is no token {index + 1}.")
        from .chain_view import view_position

        return view_position(tokens.trace, index, config or tokens.config)

    def token_pieces(self, ids: list[int]) -> list[str]:
        backend = self._backend()
        return [p.decode("utf-8", errors="replace") for p in backend.token_pieces(ids)]

    def _backend(self):  # the in-process backend (the only one with a vocabulary to read)
        from ..backends.llama_cpp import LlamaCppBackend

        if self.models.info is None:
            raise ModelError("No model is loaded: load one in the Model tab to inspect its candidates.")
        backend = self.models.backend
        if not isinstance(backend, LlamaCppBackend):
            raise ModelError("The loaded model runs on a remote server: its candidates cannot be shown here.")
        return backend

    def _same_model(self, provenance: Provenance):
        backend = self._backend()
        info = backend.info
        size, mtime_ns, sha = self.hasher.lookup(info.path)
        same_file = (info.path, size, mtime_ns) == (
            provenance.model_path,
            provenance.model_size,
            provenance.model_mtime_ns,
        )
        same_hash = sha is not None and sha == provenance.model_sha256
        if not (same_file or same_hash):
            raise ModelError(
                f"The model changed since this answer: it was written by {Path(provenance.model_path).name} "
                f"(sha256 {(provenance.model_sha256 or 'not hashed')[:12]}), the loaded one is "
                f"{Path(info.path).name} (sha256 {(sha or 'hashing...')[:12]}). Load that model to inspect it."
            )
        return backend
