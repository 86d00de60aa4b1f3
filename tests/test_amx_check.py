"""AMX that a (virtual) CPU advertises but faults on: checked in a child, never in this process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backends import amx_check
from engine.backends.machine_facts import VERDICTS

ROOT = Path(__file__).resolve().parent.parent

SIGILL_CHILD = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"


@pytest.mark.parametrize(
    ("child", "faults", "kept"),
    [(SIGILL_CHILD, True, True), ("pass", False, True), ("raise SystemExit(3)", False, False)],
    ids=["SIGILL", "clean exit", "other failure"],
)
def test_the_check_child_dying_of_sigill_is_a_fault_and_the_verdict_is_kept(
    tmp_path, monkeypatch, child, faults, kept
):
    monkeypatch.setattr(amx_check, "_CHILD", child)
    check = amx_check._faults.__wrapped__  # without the in-process memo
    assert check("machine-1", "unused.gguf", str(tmp_path)) is faults
    verdicts = tmp_path / VERDICTS
    if kept:  # an unclear failure is not remembered: the next start tries again
        assert json.loads(verdicts.read_text()) == {"machine-1": faults}
        monkeypatch.setattr(amx_check, "_CHILD", "raise SystemExit(3)")  # the file answers now
        assert check("machine-1", "unused.gguf", str(tmp_path)) is faults
    else:
        assert not verdicts.exists()


GUARDED = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
import llama_cpp
from engine.backends import amx_check, machine_facts
from engine.backends.gguf_files import bundled_model_path
data = Path(sys.argv[1])
amx_check._cpu_claims_amx = lambda: True
amx_check._build_uses_amx = lambda lib: True
machine_facts.remember(data, "amx:" + machine_facts.machine_key(llama_cpp), True)
print(amx_check.guard(llama_cpp, bundled_model_path(), data))
print(llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts)
llm = llama_cpp.Llama(model_path=str(bundled_model_path()), n_ctx=128, n_batch=32, verbose=False)
llm.eval(llm.tokenize(b"A batch of several tokens, evaluated in one go."))
print(llm.n_tokens)
"""


def test_a_known_fault_loads_models_without_extra_buffers_and_they_still_evaluate(tmp_path):
    # in a child: the switch holds for the rest of its process
    out = subprocess.run(
        [sys.executable, "-c", GUARDED.format(root=str(ROOT)), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.splitlines()
    assert out[0] == amx_check.NOTE
    assert out[1] == "False"
    assert int(out[2]) > 5


def test_no_check_runs_where_the_cpu_or_the_build_makes_no_amx_claim(tmp_path, monkeypatch):
    import llama_cpp

    monkeypatch.setattr(amx_check, "_cpu_claims_amx", lambda: False)
    monkeypatch.setattr(amx_check, "_CHILD", SIGILL_CHILD)  # would report a fault if it ran
    assert amx_check.guard(llama_cpp, Path("unused.gguf"), tmp_path) == ""
    assert not (tmp_path / VERDICTS).exists()
