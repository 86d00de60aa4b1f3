"""Failures are seen: engine warnings reach stderr and the data directory's private log file."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

from engine.logs import LOG_NAME, PrivateLogFile

ROOT = Path(__file__).resolve().parents[1]


def _chat(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "HEARTH_DATA_DIR": str(data_dir), "HEARTH_MEMORY": "0", **env}
    command = [sys.executable, "run.py", "chat", *args, "--temperature", "0", "--max-tokens", "4"]
    return subprocess.run(command, cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)


def test_an_engine_warning_lands_in_the_log_file(tmp_path):
    data_dir = tmp_path / "data"
    first = _chat(data_dir, "Tell me about oceans", "--json")
    assert first.returncode == 0, first.stderr
    conversation = json.loads(first.stdout)["conversation_id"]
    snapshots = list((data_dir / "kv").glob("*.kv"))
    assert snapshots
    for path in snapshots:  # the next turn finds a damaged KV snapshot: the engine warns, goes on
        path.write_bytes(b"not a snapshot at all")
    second = _chat(data_dir, "And then?", "--conversation", conversation)
    assert second.returncode == 0, second.stderr
    log = (data_dir / LOG_NAME).read_text(encoding="utf-8")
    assert "WARNING hearth.kv" in log and "ignored: not a snapshot file" in log
    assert "warning: KV snapshot" in second.stderr
    assert stat.S_IMODE((data_dir / LOG_NAME).stat().st_mode) == 0o600
    for path in (data_dir / "kv").glob("*.kv"):
        path.write_bytes(b"not a snapshot at all")
    quiet = _chat(data_dir, "Once more", "--conversation", conversation, HEARTH_LOG_LEVEL="error")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    assert (data_dir / LOG_NAME).read_text(encoding="utf-8") == log


def test_rotated_log_files_stay_private(tmp_path):
    path = tmp_path / LOG_NAME
    handler = PrivateLogFile(path, max_bytes=200, backups=2)
    logger = logging.Logger("rotation-test")  # not registered: leaves the process's logging alone
    logger.addHandler(handler)
    try:
        for i in range(30):
            logger.warning("line %d of a log that rotates", i)
    finally:
        handler.close()
    files = sorted(tmp_path.glob(LOG_NAME + "*"))
    assert [f.name for f in files] == [LOG_NAME, LOG_NAME + ".1", LOG_NAME + ".2"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_log_level_covers_every_hearth_logger_and_only_warnings_of_others(tmp_path):
    from engine.logs import log_to, stop_logging

    path = log_to(tmp_path, "info")
    try:
        logging.getLogger("engine.memory.context").info("module-named info")
        logging.getLogger("hearth.kv").info("part-named info")
        logging.getLogger("chromadb.telemetry").info("a library's info")
        logging.getLogger("chromadb.telemetry").warning("a library's warning")
    finally:
        stop_logging()
    assert path is not None
    text = path.read_text(encoding="utf-8")
    assert "module-named info" in text and "part-named info" in text
    assert "a library's warning" in text and "a library's info" not in text


def test_a_command_run_in_process_leaves_no_logging_setup_to_later_tests(tmp_path, caplog):
    """What tests/conftest.py's autouse fixture does after every test: a quiet command run
    in-process, and a logger a library's logging config disabled, do not silence later warnings."""
    from conftest import restored_logging

    import cli
    from cli.serve_cmd import check_exposure, log

    with restored_logging():
        assert cli.main(["--data-dir", str(tmp_path / "data"), "--log-level", "error", "conversations"]) == 0
        log.disabled = True  # as logging.config.dictConfig(disable_existing_loggers=True) does
    check_exposure("192.168.1.20", [("orla", "correct-horse")], tls=False)
    assert "without TLS" in caplog.text
