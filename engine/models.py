"""ModelManager: holds the loaded backend and swaps it safely.

A turn holds its backend under a lease from start to end (prompt tokenizing included):
swapping the model installs the new one at once for new turns, and closes the old one
only when its last lease ends, so no turn ever sees its model closed under it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .backends.base import Backend, ModelInfo
from .config import Settings
from .errors import ModelError

BackendFactory = Callable[[Settings], Backend]

#: how long closing the app waits for running turns before closing the model under them
CLOSE_WAIT_S = 30.0
log = logging.getLogger("hearth.models")


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
        self._lock = threading.Lock()  # one load at a time
        self._leases = threading.Condition()  # guards _backend swaps and _in_use
        self._in_use: dict[int, int] = {}  # id(backend) -> running leases
        self.last_error: str | None = None

    @property
    def backend(self) -> Backend:
        """The current backend, for short calls; a whole turn should use ``lease()``."""
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

    @contextmanager
    def lease(self) -> Iterator[Backend]:
        """The current backend, kept open until the ``with`` block ends, even across a swap."""
        with self._leases:
            backend = self.backend
            self._in_use[id(backend)] = self._in_use.get(id(backend), 0) + 1
        try:
            yield backend
        finally:
            with self._leases:
                left = self._in_use.pop(id(backend)) - 1
                if left:
                    self._in_use[id(backend)] = left
                self._leases.notify_all()

    def load(self, **changes: Any) -> ModelInfo:
        """Load a model with these Settings changes; on failure keep the old one and raise."""
        settings = self.settings.replace(**changes)
        with self._lock:
            try:
                factory = self._remote if settings.backend_url else self._factory
                backend = factory(settings)
            except ModelError as e:
                self.last_error = str(e)
                raise
            with self._leases:
                old, self._backend, self.settings = self._backend, backend, settings
            self.last_error = None
        if old is not None:
            self._retire(old)
        return backend.info

    def _retire(self, old: Backend) -> None:
        """Close ``old`` now if no turn uses it, else when its last turn ends (in the background)."""
        with self._leases:
            idle = id(old) not in self._in_use
        if idle:
            old.close()
            return
        threading.Thread(
            target=self._close_when_idle, args=(old, None), daemon=True, name="hearth-retire-model"
        ).start()

    def _close_when_idle(self, backend: Backend, timeout: float | None) -> None:
        with self._leases:
            self._leases.wait_for(lambda: id(backend) not in self._in_use, timeout=timeout)
        backend.close()

    def close(self) -> None:
        """Unload the model; running turns get up to CLOSE_WAIT_S to finish first."""
        with self._lock:
            with self._leases:
                backend, self._backend = self._backend, None
            if backend is not None:
                self._close_when_idle(backend, CLOSE_WAIT_S)


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
