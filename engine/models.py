"""ModelManager: holds the loaded backend and swaps it safely."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .backends.base import Backend, ModelInfo
from .config import Settings
from .errors import ModelError

BackendFactory = Callable[[Settings], Backend]


def llama_cpp_factory(settings: Settings) -> Backend:
    from .backends.llama_cpp import LlamaCppBackend  # lazy: keeps `run.py --help` instant

    return LlamaCppBackend(settings)


def remote_factory(settings: Settings) -> Backend:
    from .backends.remote import RemoteBackend  # lazy: httpx only when a server is configured

    return RemoteBackend(settings)


class ModelManager:
    """The current model. A failed load keeps the previous model (or none) loaded."""

    def __init__(
        self,
        settings: Settings,
        factory: BackendFactory = llama_cpp_factory,
        remote: BackendFactory = remote_factory,
    ):
        self.settings = settings
        self._factory = factory
        #: used instead of ``factory`` while ``settings.backend_url`` names a model server
        self._remote = remote
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def backend(self) -> Backend:
        backend = self._backend
        if backend is None:
            raise ModelError(
                "No model is loaded. "
                + (f"Last attempt: {self.last_error} " if self.last_error else "")
                + "Choose a GGUF file in the Model panel (or pass --model)."
            )
        return backend

    @property
    def info(self) -> ModelInfo | None:
        return self._backend.info if self._backend is not None else None

    def load(self, **changes) -> ModelInfo:
        """Load a model with these Settings changes; on failure keep the old one and raise."""
        settings = self.settings.replace(**changes)
        with self._lock:
            try:
                factory = self._remote if settings.backend_url else self._factory
                backend = factory(settings)
            except ModelError as e:
                self.last_error = str(e)
                raise
            old, self._backend, self.settings = self._backend, backend, settings
            self.last_error = None
        if old is not None:
            old.close()
        return backend.info

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
