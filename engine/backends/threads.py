"""CPU thread counts for llama.cpp, from the cores this process may really use.

llama-cpp-python's default (half the logical CPUs for generation) leaves a core idle on
small machines and oversubscribes a CPU quota in containers. Here: the CPUs in the
affinity mask, capped by a cgroup CPU quota (v2 ``cpu.max`` or v1 CFS quota);
generation gets one thread per physical core among them (hyper-threads share a core's
vector units, so a second thread per core slows token-by-token decoding), prompt batches
get every available logical CPU (batches are compute-bound and gain from SMT).

Everything reads files under ``root`` so tests can point it at fake /proc and /sys trees.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ThreadPlan:
    """Threads for llama.cpp and why."""

    #: threads for token-by-token generation
    generation: int
    #: threads for prompt (batch) evaluation
    batch: int
    #: logical CPUs this process may run on (affinity mask)
    logical: int
    #: physical cores among them
    physical: int
    #: CPUs granted by a cgroup quota, None when unlimited
    quota: float | None
    #: "auto" or "settings"
    source: str = "auto"

    def describe(self) -> str:
        where = f"{self.logical} logical CPU{'s' if self.logical != 1 else ''}, {self.physical} physical core"
        where += "s" if self.physical != 1 else ""
        if self.quota is not None:
            where += f", cgroup quota {self.quota:g} CPUs"
        how = "set in settings" if self.source == "settings" else "auto"
        return f"{self.generation} generation / {self.batch} batch ({how}; {where})"

    def beside_a_browser(self) -> int:
        """Generation threads while a browser on this machine renders the answer: one core
        is left to it (thread counts set in settings are kept).

        llama.cpp's threads meet at several barriers per token, so one thread preempted by
        the browser stalls them all. Measured here (2 cores, Chromium showing the page, turns
        interleaved on one server): 1 generation thread gave the page 57.6 tokens/s, 2 threads
        46.1, though alone 2 threads decode about 106 and 1 thread about 70.
        """
        return self.generation if self.source == "settings" else max(1, self.generation - 1)


def plan_threads(
    *,
    n_threads: int | None = None,
    n_threads_batch: int | None = None,
    root: Path = Path("/"),
    affinity: set[int] | None = None,
) -> ThreadPlan:
    """Thread counts; explicit settings win, the rest is derived from the machine."""
    cpus = affinity if affinity is not None else _affinity()
    quota = cgroup_cpu_quota(root)
    physical = physical_cores(root, cpus)
    allowed = len(cpus)
    if quota is not None:
        # a quota of 1.5 CPUs runs 2 threads at 75% each at best: round down, at least 1
        allowed = max(1, min(allowed, math.floor(quota)))
    generation = max(1, min(physical, allowed))
    batch = max(1, allowed)
    source = "auto"
    if n_threads:
        generation, source = n_threads, "settings"
        batch = n_threads  # one explicit number means both, as --n-threads always did
    if n_threads_batch:
        batch, source = n_threads_batch, "settings"
    return ThreadPlan(
        generation=generation, batch=batch, logical=len(cpus), physical=physical, quota=quota, source=source
    )


@contextmanager
def generation_threads(llama_cpp: Any, llm: Any, plan: ThreadPlan, spare_core: bool) -> Iterator[None]:
    """Meanwhile ``llm`` decodes token by token on ``plan.beside_a_browser()`` threads if
    ``spare_core`` (prompt batches keep theirs), else as loaded."""
    n = plan.beside_a_browser() if spare_core else plan.generation
    if n == plan.generation:
        yield
        return
    llama_cpp.llama_set_n_threads(llm._ctx.ctx, n, plan.batch)
    try:
        yield
    finally:
        llama_cpp.llama_set_n_threads(llm._ctx.ctx, plan.generation, plan.batch)


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return set(range(os.cpu_count() or 1))


def physical_cores(root: Path, cpus: set[int]) -> int:
    """Distinct (package, core) pairs among ``cpus`` in /proc/cpuinfo; len(cpus) if unknown."""
    try:
        text = (root / "proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return max(1, len(cpus))
    cores: set[tuple[str, str]] = set()
    seen_core_ids = False
    for block in text.split("\n\n"):
        fields = _fields(block)
        if "processor" not in fields:
            continue
        try:
            cpu = int(fields["processor"])
        except ValueError:
            continue
        if cpu not in cpus:
            continue
        if "core id" in fields:
            seen_core_ids = True
            cores.add((fields.get("physical id", "0"), fields["core id"]))
        else:
            cores.add(("cpu", str(cpu)))  # ARM and VMs without topology: count logical CPUs
    if not cores or not seen_core_ids:
        return max(1, len(cpus))
    return len(cores)


def _fields(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def cgroup_cpu_quota(root: Path) -> float | None:
    """CPUs granted by the tightest cgroup CPU limit on this process's path, or None."""
    try:
        lines = (root / "proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.strip().lstrip("/")
        if controllers == "":  # cgroup v2 unified hierarchy
            limits += _walk(root / "sys/fs/cgroup", rel, _v2_limit)
        elif "cpu" in controllers.split(","):
            for mount in ("cpu,cpuacct", "cpuacct,cpu", "cpu"):
                base = root / "sys/fs/cgroup" / mount
                if base.is_dir():
                    limits += _walk(base, rel, _v1_limit)
                    break
    return min(limits) if limits else None


def _walk(base: Path, rel: str, read) -> list[float]:
    """Limits of the cgroup and each ancestor (any of them may cap the process)."""
    parts = [p for p in rel.split("/") if p]
    found = []
    for depth in range(len(parts), -1, -1):
        limit = read(base.joinpath(*parts[:depth]))
        if limit is not None:
            found.append(limit)
    return found


def _v2_limit(directory: Path) -> float | None:
    try:
        quota, _, period = (directory / "cpu.max").read_text(encoding="utf-8").strip().partition(" ")
        if quota == "max":
            return None
        return _ratio(quota, period or "100000")
    except OSError:
        return None


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text(encoding="utf-8").strip()
        period = (directory / "cpu.cfs_period_us").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None
