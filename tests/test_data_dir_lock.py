"""One process per data directory: a second server or a CLI command is refused, naming the
running one, and nothing is written; real `python run.py` processes against a held lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from engine import Settings, build

ROOT = Path(__file__).resolve().parents[1]


def hearth(*args: str, data_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "run.py", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_commands_are_refused_while_another_process_holds_the_data_dir(tmp_path):
    data = tmp_path / "data"
    note = tmp_path / "note.txt"
    note.write_text("The capybara is the largest rodent.", encoding="utf-8")
    holder = build(
        Settings(data_dir=data),
        load_model=False,
        owner={"command": "python run.py serve", "url": "http://127.0.0.1:7999", "port": 7999},
    )
    try:
        for args in (["serve", "--port", str(free_port())], ["ingest", str(note)], ["conversations"]):
            result = hearth(*args, data_dir=data)
            assert result.returncode != 0, (args, result.stdout)
            message = result.stderr
            assert "Another Hearth is using the data directory" in message, (args, message)
            assert f"process {os.getpid()}" in message and "http://127.0.0.1:7999" in message
            assert "Traceback" not in message
        assert holder.documents.documents() == []  # the refused ingest wrote nothing
        holder.documents.ingest_paths([note])
        listed = hearth("documents", "--json", data_dir=data)  # listing only reads: allowed, read-only
        assert listed.returncode == 0 and [d["name"] for d in json.loads(listed.stdout)] == ["note.txt"]
        assert "read-only" in listed.stderr
        refused = hearth("documents", "--delete", json.loads(listed.stdout)[0]["id"], data_dir=data)
        assert refused.returncode != 0 and "Another Hearth" in refused.stderr
        assert len(holder.documents.documents()) == 1
        holder.documents.delete(holder.documents.documents()[0].id)
    finally:
        holder.close()
    added = hearth("ingest", str(note), "--json", data_dir=data)  # released: now it works
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)[0]["status"] == "added"


def test_a_second_server_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    data, port = tmp_path / "data", free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    first = subprocess.Popen(
        [sys.executable, "run.py", "--data-dir", str(data), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, up = time.monotonic() + 180, False
        while time.monotonic() < deadline and first.poll() is None and not up:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    up = response.status == 200
            except OSError:
                time.sleep(0.5)
        assert up, first.stderr.read() if first.poll() is not None else "the first server never answered"
        second = hearth("--port", str(free_port()), data_dir=data, timeout=60)
        assert second.returncode != 0
        assert f"process {first.pid}" in second.stderr and f"http://127.0.0.1:{port}" in second.stderr
        assert "serve" in second.stderr and "Traceback" not in second.stderr
        os.kill(first.pid, signal.SIGKILL)  # a crash: the kernel drops its lock with the process
        first.wait(timeout=30)
        listed = hearth("conversations", "--json", data_dir=data)
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
