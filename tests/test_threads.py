"""Thread counts from the cores a process may use: fake /proc and cgroup trees, then the real machine."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from pathlib import Path

import llama_cpp
import pytest
from conftest import GREEDY, run_turn

from app import compare_handlers as ch
from app import handlers as h
from app.controls import control_values
from engine import Settings, build
from engine.backends.threads import ThreadPlan, cgroup_cpu_quota, physical_cores, plan_threads
from engine.types import Message


def cpuinfo(cores: list[tuple[int, int]]) -> str:
    """/proc/cpuinfo text; one (physical id, core id) per logical CPU."""
    return (
        "\n\n".join(
            f"processor\t: {i}\nmodel name\t: Fake CPU\nphysical id\t: {p}\ncore id\t\t: {c}\ncpu cores\t: 4"
            for i, (p, c) in enumerate(cores)
        )
        + "\n"
    )


def fake_root(tmp_path: Path, *, cores, cgroup_lines: str, files: dict[str, str] = {}) -> Path:  # noqa: B006
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo(cores))
    (tmp_path / "proc/self/cgroup").write_text(cgroup_lines)
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


SMT_4C8T = [(0, 0), (0, 1), (0, 2), (0, 3), (0, 0), (0, 1), (0, 2), (0, 3)]  # 4 cores, 2 threads each


def test_smt_machine_generation_gets_physical_cores_batches_get_all(tmp_path):
    root = fake_root(tmp_path, cores=SMT_4C8T, cgroup_lines="0::/\n")
    plan = plan_threads(root=root, affinity=set(range(8)))
    assert (plan.generation, plan.batch, plan.physical, plan.quota) == (4, 8, 4, None)
    assert "4 generation / 8 batch" in plan.describe()


def test_affinity_mask_limits_both(tmp_path):
    root = fake_root(tmp_path, cores=SMT_4C8T, cgroup_lines="0::/\n")
    # CPUs 0 and 4 are the two hyper-threads of core 0; CPU 1 is core 1
    plan = plan_threads(root=root, affinity={0, 4, 1})
    assert (plan.generation, plan.batch, plan.physical) == (2, 3, 2)


def test_cgroup_v2_quota_caps_threads(tmp_path):
    root = fake_root(
        tmp_path,
        cores=SMT_4C8T,
        cgroup_lines="0::/app.slice/hearth\n",
        files={
            "sys/fs/cgroup/app.slice/hearth/cpu.max": "250000 100000\n",
            "sys/fs/cgroup/cpu.max": "max 100000\n",
        },
    )
    assert cgroup_cpu_quota(root) == 2.5
    plan = plan_threads(root=root, affinity=set(range(8)))
    assert (plan.generation, plan.batch, plan.quota) == (2, 2, 2.5)


def test_cgroup_v2_parent_limit_applies(tmp_path):
    root = fake_root(
        tmp_path,
        cores=SMT_4C8T,
        cgroup_lines="0::/outer/inner\n",
        files={
            "sys/fs/cgroup/outer/cpu.max": "100000 100000\n",
            "sys/fs/cgroup/outer/inner/cpu.max": "max 100000\n",
        },
    )
    assert plan_threads(root=root, affinity=set(range(8))).generation == 1


def test_cgroup_v1_cfs_quota(tmp_path):
    lines = "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    root = fake_root(
        tmp_path,
        cores=SMT_4C8T,
        cgroup_lines=lines,
        files={
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    plan = plan_threads(root=root, affinity=set(range(8)))
    assert (plan.quota, plan.generation, plan.batch) == (3.0, 3, 3)


def test_unlimited_v1_quota_and_a_tiny_one(tmp_path):
    unlimited = fake_root(
        tmp_path / "a",
        cores=SMT_4C8T,
        cgroup_lines="1:cpu:/\n",
        files={
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_quota(unlimited) is None
    tiny = fake_root(
        tmp_path / "b",
        cores=SMT_4C8T,
        cgroup_lines="0::/\n",
        files={"sys/fs/cgroup/cpu.max": "50000 100000\n"},
    )
    plan = plan_threads(root=tiny, affinity=set(range(8)))
    assert (plan.generation, plan.batch) == (1, 1)  # never zero


def test_no_topology_counts_logical_cpus(tmp_path):
    root = tmp_path
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\nBogoMIPS\t: 50\n")
    (root / "proc/self/cgroup").write_text("0::/\n")
    assert physical_cores(root, {0, 1}) == 2
    assert physical_cores(tmp_path / "missing", {0, 1, 2}) == 3


def test_explicit_settings_win(tmp_path):
    root = fake_root(tmp_path, cores=SMT_4C8T, cgroup_lines="0::/\n")
    assert (plan_threads(n_threads=3, root=root, affinity=set(range(8))).batch) == 3
    plan = plan_threads(n_threads=3, n_threads_batch=6, root=root, affinity=set(range(8)))
    assert (plan.generation, plan.batch, plan.source) == (3, 6, "settings")


def test_real_machine_and_the_loaded_model(services):
    plan = plan_threads()
    cpus = os.sched_getaffinity(0)
    assert 1 <= plan.generation <= len(cpus) and plan.batch == min(len(cpus), plan.batch)
    assert plan.generation <= plan.batch
    info = services.models.info
    assert (info.n_threads, info.n_threads_batch) == (plan.generation, plan.batch)
    llm = services.models.backend._llm  # what llama.cpp was really given
    assert (llm.n_threads, llm.n_threads_batch) == (plan.generation, plan.batch)
    from app import model_handlers as mh

    assert f"{plan.generation} generation / {plan.batch} batch" in mh.model_facts(services)
    assert f"threads {plan.generation} gen / {plan.batch} batch" in info.summary()


def test_flash_attention_is_measured_by_default_and_the_flags_set_it(services, monkeypatch):
    """Auto by default (attention_check): the loaded model runs as the CPU check chose, and the
    flags and the variable force it either way."""
    import cli

    llm = services.models.backend._llm  # what llama.cpp was really given
    chose_on = services.models.info.attention_note.startswith("on (measured")
    assert services.models.info.attention_note.startswith(("on (measured", "off (measured"))
    assert (llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED) is chose_on

    def flash(*argv: str) -> bool | None:
        return cli.settings_from(cli.global_parser().parse_args([*argv, "conversations"])).flash_attn

    assert flash() is None
    assert (flash("--flash-attn", "on"), flash("--flash-attn", "off"), flash("--no-flash-attn")) == (
        True,
        False,
        False,
    )
    monkeypatch.setenv("HEARTH_FLASH_ATTN", "0")
    assert flash() is False
    monkeypatch.setenv("HEARTH_FLASH_ATTN", "auto")
    assert flash() is None
    assert flash("--flash-attn", "on") is True
    with pytest.raises(SystemExit):
        flash("--flash-attn", "maybe")


def test_the_batch_size_flag_reaches_the_settings(monkeypatch):
    import cli

    def n_batch(*argv: str) -> int | None:
        return cli.settings_from(cli.global_parser().parse_args([*argv, "conversations"])).n_batch

    assert n_batch() is None  # auto: attention_check
    assert n_batch("--n-batch", "128") == 128
    monkeypatch.setenv("HEARTH_N_BATCH", "256")
    assert n_batch() == 256


def test_beside_a_browser_leaves_one_core_unless_the_count_was_set():
    def plan(generation: int, source: str = "auto") -> ThreadPlan:
        return ThreadPlan(generation=generation, batch=8, logical=8, physical=8, quota=None, source=source)

    assert [plan(n).beside_a_browser() for n in (1, 2, 8)] == [1, 1, 7]
    assert plan(4, "settings").beside_a_browser() == 4


@contextlib.contextmanager
def as_on_two_cores(backend):
    """The loaded model as on a 2-core machine (whatever this one has): 2 generation threads.
    Yields the threads each single-token decode ran on."""
    llm, usual = backend._llm, backend._threads
    backend._threads = dataclasses.replace(usual, generation=2, source="auto")
    llama_cpp.llama_set_n_threads(llm._ctx.ctx, 2, usual.batch)
    decode, seen = llm.eval, []

    def spy(tokens):
        if len(tokens) == 1:
            seen.append(llama_cpp.llama_n_threads(llm._ctx.ctx))
        return decode(tokens)

    llm.eval = spy
    try:
        yield seen
    finally:
        del llm.eval
        backend._threads = usual
        llama_cpp.llama_set_n_threads(llm._ctx.ctx, usual.generation, usual.batch)


@pytest.fixture
def two_generation_threads(services):
    with as_on_two_cores(services.models.backend) as seen:
        yield seen


def test_a_page_turn_decodes_on_a_core_fewer_and_others_on_all(services, two_generation_threads):
    seen = two_generation_threads
    values = control_values(GREEDY.replace(max_tokens=8))
    page = h.respond_with_attachment(
        services, None, "Name a bird.", [], False, "", None, "", [], *values, spare_core=True
    )
    *_, (history, cid, _, _) = page
    assert "tok/s" in str(history) and seen and set(seen) == {1}
    seen.clear()
    run_turn(
        services, "Name a fish.", GREEDY.replace(max_tokens=8)
    )  # an API or CLI turn: no browser renders it here
    assert seen and set(seen) == {2}
    seen.clear()
    *_, (history, _, _, _) = h.regenerate(services, cid, *values, spare_core=True)
    assert "tok/s" in str(history) and set(seen) == {1}
    seen.clear()
    views = list(
        ch.run_compare(
            services, cid, [ch.CURRENT, ch.CURRENT, ch.OFF], [5, 6, None], *values, spare_core=True
        )
    )
    assert "tok/s" in views[-1][1] and set(seen) == {1}


def test_the_page_spares_a_core_only_when_served_on_loopback(services):
    from app.server import create_app

    def spares(app) -> set[bool]:
        demo = app.state.blocks
        return {
            fn.fn.keywords["spare_core"]
            for fn in demo.fns.values()
            if isinstance(fn.fn, functools.partial) and "spare_core" in fn.fn.keywords
        }

    assert spares(create_app(services, host="127.0.0.1")) == {True}
    assert spares(create_app(services, host="0.0.0.0", auth=("me", "a long enough secret"))) == {False}


def test_a_core_fewer_gives_the_same_bits(services, two_generation_threads):
    """Under 256 tokens of context a page answer, decoded on a core fewer, is the same tokens with
    the same log-probabilities as on all cores (rows of a matrix product are split between
    threads, never one row's sum). Past it, llama.cpp's flash attention splits a one-token
    decode's cache between threads, and the sums differ by thread count (README)."""
    backend = services.models.backend
    messages = [Message(role="user", content="Write a long story about a lighthouse keeper and a storm.")]
    runs = {}
    for spare in (False, True):
        backend.clear_cache()
        chunks = backend.stream_chat(messages, GREEDY.replace(max_tokens=60), spare_core=spare, logprobs=1)
        runs[spare] = [(lp.token, lp.logprob) for c in chunks for lp in c.logprobs or []]
    assert set(two_generation_threads) == {1, 2} and len(runs[True]) == 60
    assert runs[True] == runs[False]


def test_without_flash_attention_a_core_fewer_gives_the_same_bits_at_any_context(tmp_path):
    """Without flash attention (attention_check's choice where it decodes faster) a one-token
    decode's attention is split between threads by rows too: past 256 tokens of context a page
    answer on a core fewer is still the API's, to the last bit."""
    services = build(Settings(data_dir=tmp_path / "d", flash_attn=False, memory=False, kv_snapshots=False))
    backend = services.models.backend
    story = "The keeper climbed ninety-nine steps to light the lamp and wrote the weather in a book. " * 16
    messages = [Message(role="user", content=story + "Go on with the story.")]
    try:
        assert backend.count_prompt_tokens(messages) > 256
        with as_on_two_cores(backend) as seen:
            runs = {}
            for spare in (False, True):
                backend.clear_cache()
                chunks = backend.stream_chat(
                    messages, GREEDY.replace(max_tokens=40), spare_core=spare, logprobs=1
                )
                runs[spare] = [(lp.token, lp.logprob) for c in chunks for lp in c.logprobs or []]
        assert set(seen) == {1, 2} and len(runs[True]) == 40
        assert runs[True] == runs[False]
    finally:
        services.close()
