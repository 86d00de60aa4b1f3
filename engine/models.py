"""ModelManager: holds the loaded backend and swaps it safely."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .backends.base import Backend, ModelInfo
from .config import Settings
from .errors import ModelError

BackendFactory = Callable[[Settings], Backend]

log = logging.getLogger("hearth.models")


def llama_cpp_factory(settings: Settings) -> Backend:
    from .backends.llama_cpp import LlamaCppBackend  # lazy: keeps `run.py --help` instant

    return LlamaCppBackend(settings)


class ModelManager:
    """The current model. A failed load keeps the previous model (or none) loaded."""

    def __init__(self, settings: Settings, factory: BackendFactory = llama_cpp_factory):
        self.settings = settings
        self._factory = factory
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
                backend = self._factory(settings)
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


class WarmUp:
    """Start-up work done in the background, so the first turn finds everything loaded.

    Each step loads something the first turn needs (the embedder, the vector store, the
    model's weights). A turn that arrives meanwhile simply waits on the lock of the part
    it needs; a step that fails is logged and left for the turn to report.
    """

    def __init__(self, steps: list[tuple[str, Callable[[], object]]]):
        self.steps = steps
        self.done_steps: list[str] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="hearth-warm-up", daemon=True)

    def start(self) -> WarmUp:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every step has run."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        for name, step in self.steps:
            try:
                step()
                self.done_steps.append(name)
            except Exception as e:  # noqa: BLE001 - warm-up is best effort; the turn reports real errors
                self.errors.append(f"{name}: {e}")
                log.info("warm-up step %s failed: %s", name, e)
