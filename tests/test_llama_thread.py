"""LlamaThread: whichever thread asks, the work runs on the one thread (pure logic; the
backend's tests run every generation through it on the bundled model)."""

from __future__ import annotations

import threading
import time

import pytest

from engine.backends import llama_thread
from engine.backends.llama_thread import LlamaThread


def _where() -> str:
    return threading.current_thread().name


def test_calls_from_many_threads_run_on_the_one_thread():
    worker = LlamaThread(name="the-llama-thread")
    seen: list[str] = []
    callers = [threading.Thread(target=lambda: seen.append(worker.call(_where))) for _ in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert seen == ["the-llama-thread"] * 4
    worker.stop()


def test_a_generator_runs_there_and_its_errors_come_back_here():
    worker = LlamaThread(name="the-llama-thread")

    def items():
        yield _where()
        yield _where()
        raise ValueError("bad prompt")

    got = []
    with pytest.raises(ValueError, match="bad prompt"):
        for item in worker.iterate(items()):
            got.append(item)
    assert got == ["the-llama-thread", "the-llama-thread"]
    with pytest.raises(KeyError):
        worker.call({}.__getitem__, "missing")
    worker.stop()


def test_closing_the_consumer_stops_the_generator_and_later_work_still_runs():
    worker = LlamaThread()
    closed = threading.Event()
    produced: list[int] = []

    def endless():
        try:
            n = 0
            while True:
                produced.append(n)
                yield n
                n += 1
        finally:
            closed.set()

    stream = worker.iterate(endless())
    assert next(stream) == 0
    stream.close()
    assert closed.wait(10)
    assert worker.call(lambda: 42) == 42  # the thread is free again
    worker.stop()


def test_work_asked_for_from_the_thread_itself_runs_at_once():
    worker = LlamaThread()
    # a job that asks for more work would wait for itself forever if it were queued
    assert worker.call(lambda: worker.call(lambda: list(worker.iterate(iter_two())))) == [1, 2]
    worker.stop()


def test_after_stop_work_runs_on_the_caller():
    worker = LlamaThread(name="gone")
    worker.stop()
    worker._thread.join(10)
    assert worker.call(_where) == threading.current_thread().name


def iter_two():
    yield 1
    yield 2


def test_every_model_of_the_process_shares_one_thread_until_the_last_lets_go():
    first, second = llama_thread.acquire(), llama_thread.acquire()
    assert first is second
    llama_thread.release(first)
    assert first.call(_where) == first._thread.name  # still serving the other user
    llama_thread.release(second)
    first._thread.join(10)
    assert not first._thread.is_alive()  # an idle llama thread would slow the next one's decodes
    third = llama_thread.acquire()
    assert third is not first and third.call(_where) == third._thread.name
    llama_thread.release(third)


def test_a_stream_started_after_stop_runs_on_the_caller_instead_of_hanging():
    worker = LlamaThread()
    stream = worker.iterate(iter_two())  # created while open, first read after stop
    worker.stop()
    assert list(stream) == [1, 2]


def _counted(produced: list[int]):
    for n in range(100):
        produced.append(n)
        yield n


def test_a_stream_advances_only_as_far_as_it_is_read():
    """Never ahead where decoding uses every core: the caller works on an item while the next
    one would decode, and on two cores that contention cut decoding to a quarter."""
    worker = LlamaThread()
    produced: list[int] = []
    stream = worker.iterate(_counted(produced))
    assert next(stream) == 0
    time.sleep(0.3)  # room for a generator running ahead to show itself
    assert produced == [0]
    assert next(stream) == 1 and produced == [0, 1]
    stream.close()
    assert worker.call(lambda: len(produced)) == 2  # closed, and the thread free again
    worker.stop()


def test_a_stream_may_run_ahead_of_its_reader_as_far_as_it_is_allowed():
    worker = LlamaThread()
    produced: list[int] = []
    stream = worker.iterate(_counted(produced), ahead=5)
    assert next(stream) == 0
    deadline = time.monotonic() + 10
    while len(produced) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # room for it to run further than allowed
    assert produced == list(range(6))  # the item read, and five ahead
    assert next(stream) == 1
    time.sleep(0.3)
    assert len(produced) == 7  # one more asked for, one more made
    assert list(stream) == list(range(2, 100))  # every item, in order
    worker.stop()


class _Streaming:
    def __init__(self, worker: LlamaThread):
        self._thread = worker
        self.produced: list[int] = []

    @llama_thread.streams
    def stream(self, *, spare_core: bool = False):
        yield from _counted(self.produced)


@pytest.mark.parametrize("spare_core", [False, True])
def test_only_a_stream_on_a_core_fewer_runs_ahead(spare_core):
    """A page turn decodes on a core fewer (beside the browser): that core is its own, so it
    decodes on while the server hands the last update to the page."""
    owner = _Streaming(LlamaThread())
    stream = owner.stream(spare_core=spare_core)
    assert next(stream) == 0
    time.sleep(0.3)
    ahead = llama_thread.AHEAD_BESIDE_A_BROWSER if spare_core else 0
    assert len(owner.produced) == 1 + ahead  # (the stream holds the thread until it is closed)
    stream.close()
    assert owner._thread.call(lambda: "free") == "free"
    owner._thread.stop()


def test_a_stream_nobody_reads_or_closes_is_closed_in_the_end(monkeypatch):
    monkeypatch.setattr(llama_thread, "ABANDONED_S", 0.2)
    worker = LlamaThread()
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield 1
        finally:
            closed.set()

    stream = worker.iterate(endless())
    assert next(stream) == 1  # then neither read nor closed (a leaked iterator)
    assert closed.wait(10)
    assert worker.call(lambda: "free") == "free"
    worker.stop()
