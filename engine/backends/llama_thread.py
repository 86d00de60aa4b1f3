"""Every llama.cpp call of every loaded model on one long-lived thread.

llama.cpp's CPU backend runs each graph on an OpenMP team that belongs to the calling thread.
Measured here (2 cores): while a second thread that has run llama.cpp is alive, even idle,
every decode slows by about a third (libgomp throttles its spinning once it manages more
threads than there are cores). Callers come from many threads: the page's worker pool, an
API request's thread, memory upkeep, the loader. So the backend hands its work to this one
thread, as llama.cpp's own server does with its single slot loop, and only ever one OpenMP
team exists.

The thread is the process's, not a model's: two loaded models (a benchmark's pair, a swap in
progress) would otherwise be two teams again. That is module state, as the OpenMP runtime's
own is: ``acquire`` it for a backend, ``release`` it when the backend closes; the thread ends
with its last user (an idle thread that ran llama.cpp would slow the next one's decodes).

``call`` runs a function there and waits for it; ``iterate`` advances a generator there, one
item per item asked for, and hands each over through a queue (closing the consumer's iterator
closes the generator there). Work submitted from the thread itself runs at once, so nothing
here can wait for itself.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

T = TypeVar("T")

_END = object()

#: a stream not read (nor closed) for this long is taken to be abandoned and closed
ABANDONED_S = 600.0

#: how far a stream decoding on a core fewer may run ahead of its reader (the page reads every
#: 0.1 s, about 5 tokens of the bundled model on one core; a reader that stops reading holds at most this many)
AHEAD_BESIDE_A_BROWSER = 32


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


class LlamaThread:
    def __init__(self, name: str = "hearth-llama", *, start: bool = True):
        """``start=False``: a stand-in whose work runs on the caller (a closed backend's)."""
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._open = start  # taking work; set and read under _guard
        self._guard = threading.Lock()
        if start:
            self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def on_it(self) -> bool:
        return threading.current_thread() is self._thread

    def _submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``, unless the work must run on the caller: asked from the thread itself,
        or after ``stop`` (the thread would never get to it)."""
        with self._guard:
            if not self._open or self.on_it():
                return False
            self._jobs.put(job)
            return True

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the thread; its result, or its exception raised here."""
        done: Future[T] = Future()

        def job() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - raised again on the caller's thread
                done.set_exception(e)

        if not self._submit(job):
            return fn(*args)
        return done.result()

    def iterate(self, items: Generator[T, Any, Any], ahead: int = 0) -> Iterator[T]:
        """``items`` advanced on the thread, one item each time this iterator is asked for one,
        and at most ``ahead`` items before they are asked for.

        Lock-step (``ahead=0``) where decoding uses every core: a generator running ahead would
        decode while the caller works on the previous item, and on two cores that contention
        cut decoding to a quarter. A stream that decodes on a core fewer (``spare_core``, see
        ``streams``) runs ahead instead: its core is its own, and in lock-step it idled while
        the page's server handled each update (measured: 0.84 of its core busy, 0.91 ahead).
        The stream holds the thread until it ends, as it held the model's lock; a consumer that
        neither reads nor closes it for ``ABANDONED_S`` is taken to be gone and the generation
        is closed.
        """
        out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        wanted = threading.Semaphore(ahead)  # one release per item asked for, ``ahead`` to start
        gone = threading.Event()

        def job() -> None:
            try:
                while wanted.acquire(timeout=ABANDONED_S) and not gone.is_set():
                    out.put(next(items))
            except StopIteration:
                pass
            except BaseException as e:  # noqa: BLE001 - raised again on the consumer's thread
                out.put(_Raised(e))
            finally:
                items.close()
                out.put(_END)

        if not self._submit(job):
            yield from items
            return
        try:
            while True:
                wanted.release()
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, _Raised):
                    raise item.error
                yield item
        finally:
            gone.set()  # the consumer went away: the generator is closed on the thread
            wanted.release()

    def stop(self) -> None:
        """Let the thread end once the work queued before this is done; later work runs on
        its callers."""
        with self._guard:
            if self._open:
                self._open = False
                self._jobs.put(None)


_shared: LlamaThread | None = None
_users = 0
_shared_lock = threading.Lock()


def acquire() -> LlamaThread:
    """The process's llama thread, started for its first user."""
    global _shared, _users
    with _shared_lock:
        if _shared is None:
            _shared = LlamaThread()
        _users += 1
        return _shared


def release(thread: LlamaThread) -> None:
    """One user is done with ``thread``; the last one ends it."""
    global _shared, _users
    with _shared_lock:
        if thread is not _shared:
            return
        _users -= 1
        if _users <= 0:
            thread.stop()
            _shared, _users = None, 0


class OnLlamaThread(Protocol):
    _thread: LlamaThread


B = TypeVar("B", bound=OnLlamaThread)
P = ParamSpec("P")


def streams(
    method: Callable[Concatenate[B, P], Generator[T, Any, Any]],
) -> Callable[Concatenate[B, P], Iterator[T]]:
    """A generator method of a backend, advanced on its llama thread; a stream called with
    ``spare_core=True`` (a browser on this machine shows it) may run ``AHEAD_BESIDE_A_BROWSER``
    items ahead of its reader (see ``LlamaThread.iterate``)."""

    @functools.wraps(method)
    def wrapper(self: B, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        ahead = AHEAD_BESIDE_A_BROWSER if kwargs.get("spare_core") else 0
        return self._thread.iterate(method(self, *args, **kwargs), ahead)

    return wrapper


def calls(method: Callable[Concatenate[B, P], T]) -> Callable[Concatenate[B, P], T]:
    """A method of a backend, run on its llama thread."""

    @functools.wraps(method)
    def wrapper(self: B, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._thread.call(functools.partial(method, self, *args, **kwargs))

    return wrapper
