"""Facts measured once about this machine and llama.cpp build, kept in the data directory.

Checks that cost a child process and seconds (does AMX fault, which attention kernel decodes
faster) are remembered in ``DATA_DIR/cpu-check.json`` under a key of the CPU, kernel and
llama.cpp library, so a later start, or another CPU, kernel or build, knows whether to measure
again. Writes are atomic (a temporary file, then a rename) and merge with what the file holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

VERDICTS = "cpu-check.json"


def machine_key(llama_cpp: ModuleType) -> str:
    """This CPU, kernel and llama.cpp build: what a verdict holds for."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux
        cpuinfo = f"{platform.machine()}\n{platform.processor()}\n{os.cpu_count()}"
    cpu = [line for line in cpuinfo.splitlines() if line][:30]
    lib = Path(llama_cpp.llama_cpp._lib._name)
    stat = lib.stat() if lib.exists() else None
    parts = [*cpu, platform.release(), str(lib), str(stat and (stat.st_size, stat.st_mtime_ns))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def recall(data_dir: Path, key: str) -> Any:
    """What ``remember`` kept under ``key``, or None."""
    return _read(data_dir / VERDICTS).get(key)


def remember(data_dir: Path, key: str, value: Any) -> None:
    """Keep ``value`` under ``key``; a failure to write is logged (the check runs again next time)."""
    path = data_dir / VERDICTS
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        known = {**_read(path), key: value}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not keep a CPU check's verdict in %s (%s)", path, e)


def _read(path: Path) -> dict[str, Any]:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or damaged: measured again
        return {}
    return known if isinstance(known, dict) else {}
