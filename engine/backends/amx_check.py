"""Intel AMX that the CPU advertises but faults on.

Some virtual machines list AMX in cpuid (and so in /proc/cpuinfo) yet raise SIGILL on its tile
instructions: seen on this project's own 2-core Sapphire Rapids machines. llama-cpp-python builds
llama.cpp with ``-march=native``, which there compiles in ggml's AMX kernels; they take the
batched products of quantized weights (Q4_0, Q4_1, Q8_0, K-quants), so the first prompt of more
than one token kills the whole process, with no Python exception to catch.

``guard`` tries it once per machine and llama.cpp build, in a child process (a few tokens of a
model in one batch), and keeps the verdict in the data directory (machine_facts). Where the child
died of SIGILL, every model this process loads goes without llama.cpp's extra buffer types (AMX
and the repacked weight layouts): prompt evaluation is slower for some quantizations, nothing
else changes. Nothing happens, and no child runs, unless both the CPU and the build claim AMX.
"""

from __future__ import annotations

import functools
import logging
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from ..errors import ModelError
from .gguf_files import bundled_model_path
from .machine_facts import machine_key, recall, remember

log = logging.getLogger(__name__)

NOTE = (
    "This CPU reports Intel AMX but faults on it (some virtual machines do): models load "
    "without llama.cpp's AMX and repacked kernels."
)
#: a few tokens of the model in one batch: what takes llama.cpp's AMX path
_CHILD = (
    "import sys, llama_cpp\n"
    "llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_batch=16, verbose=False)\n"
    "llm.eval(llm.tokenize(b'one two three four five six seven eight nine ten'))\n"
)


def guard(llama_cpp: ModuleType, model: Path, data_dir: Path) -> str:
    """Make this process load models without AMX where AMX faults; returns a note for the
    Model tab then, else ""."""
    if not (_cpu_claims_amx() and _build_uses_amx(llama_cpp)):
        return ""
    try:  # the small bundled model, if it is there: the check loads a whole model
        model = bundled_model_path()
    except ModelError:
        pass
    if not _faults("amx:" + machine_key(llama_cpp), str(model), str(data_dir)):
        return ""
    without_extra_buffers(llama_cpp)
    return NOTE


def without_extra_buffers(llama_cpp: ModuleType) -> None:
    """Every ``Llama`` made from now on in this process loads its weights into plain CPU
    buffers. llama-cpp-python has no argument for it: its model parameters come from
    ``llama_model_default_params``, which is wrapped (once) to turn ``use_extra_bufts`` off."""
    if plain_buffers(llama_cpp):
        return
    module = llama_cpp.llama_cpp
    defaults = module.llama_model_default_params

    @functools.wraps(defaults)
    def plain() -> object:
        params = defaults()
        params.use_extra_bufts = False
        return params

    plain.hearth_plain_buffers = True  # type: ignore[attr-defined]
    module.llama_model_default_params = plain


def plain_buffers(llama_cpp: ModuleType) -> bool:
    """Whether this process loads models without extra buffer types (``without_extra_buffers``)."""
    return bool(getattr(llama_cpp.llama_cpp.llama_model_default_params, "hearth_plain_buffers", False))


def _cpu_claims_amx() -> bool:
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:  # not Linux: ggml asks the OS for AMX only there
        return False


def _build_uses_amx(llama_cpp: ModuleType) -> bool:
    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@functools.cache  # one child per machine and process: the answer is a fact about the machine
def _faults(key: str, model: str, data_dir: str) -> bool:
    known = recall(Path(data_dir), key)
    if isinstance(known, bool):
        return known
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, model], capture_output=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("the AMX check could not run (%s): assuming AMX works", e)
        return False
    if child.returncode not in (0, -signal.SIGILL):
        log.warning("the AMX check failed (exit %s): assuming AMX works", child.returncode)
        return False
    faults = child.returncode == -signal.SIGILL
    log.warning(NOTE) if faults else log.info("AMX works on this CPU")
    remember(Path(data_dir), key, faults)
    return faults
