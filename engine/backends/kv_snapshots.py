"""KV snapshots per conversation: RAM and disk tiers, each with its own byte budget.

Switching back to a conversation (or continuing it after a restart) restores the KV
cells its last turn left instead of re-evaluating the whole prompt. A snapshot is only
ever used by a backend whose *fingerprint* matches (model file, n_ctx, n_batch, KV
types, chat template, llama.cpp build): anything else is a miss, never a wrong answer.

Determinism rule shared with the prefix cache (``chunk_rule.ChunkRule``): only KV positions
that hold what a fresh evaluation would compute are *clean*; each snapshot records how far
that goes, and a turn reuses at most ``min(common prefix, clean)``, as the rule allows.

Disk files: ``MAGIC | u32 header length | JSON header | int32 tokens | state bytes``,
written as temp file + fsync + rename, mode 0600. A file that is truncated, corrupt
(CRC), or from another fingerprint is ignored with a log line.

This module never imports llama_cpp: the backend hands it plain token lists and bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("hearth.kv")

MAGIC = b"HEARTHKV"
FORMAT = 1
SUFFIX = ".kv"
#: keys that start with this stay in RAM and are never written to disk (stateless API calls:
#: nothing of them may outlive the process)
RAM_ONLY = "ram:"
MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """The KV cells of one sequence and the tokens they hold."""

    tokens: array  # array("i"): token ids at KV positions 0..n-1
    #: leading positions evaluated as full aligned n_batch chunks (safe for greedy reuse)
    clean: int
    #: llama_state_seq_get_data bytes
    state: bytearray

    @property
    def nbytes(self) -> int:
        return len(self.state) + self.tokens.itemsize * len(self.tokens)


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable hash of everything that makes KV cells reusable."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8", "replace")).hexdigest()[:16]


def common_prefix(a: Iterable[int], b: Iterable[int]) -> int:
    """How many leading tokens two token sequences share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def default_budgets(data_dir: Path) -> tuple[int, int]:
    """(RAM bytes, disk bytes): 5% of physical memory (64 MB..2 GB), 5% of free disk (256 MB..4 GB)."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        ram = 4096 * MB
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = 10 * 1024 * MB
    return _clamp(ram // 20, 64 * MB, 2048 * MB), _clamp(free // 20, 256 * MB, 4096 * MB)


def _clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(value)))


class KvSnapshotStore:
    """Least-recently-used snapshots in RAM and on disk; thread-safe.

    Disk writes happen on a background thread (newest snapshot per key wins), so a turn
    never waits for the disk; ``flush()`` waits for them (on close).
    """

    def __init__(self, directory: Path | None, *, fingerprint: str, ram_bytes: int, disk_bytes: int):
        self.directory = directory
        self.fingerprint = fingerprint
        self.ram_bytes = ram_bytes
        self.disk_bytes = disk_bytes
        self._ram: OrderedDict[str, Snapshot] = OrderedDict()
        self._ram_used = 0
        self._lock = threading.Lock()
        self._pending: dict[str, Snapshot] = {}
        self._writer: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)

    # public API

    def get(self, key: str) -> Snapshot | None:
        with self._lock:
            snap = self._ram.get(key) or self._pending.get(key)
            if snap is not None:
                if key in self._ram:
                    self._ram.move_to_end(key)
        if snap is not None:
            self._touch(key)  # the disk tier follows use too
            return snap
        snap = self._read(key)
        if snap is not None:
            with self._lock:
                self._keep_in_ram(key, snap)
        return snap

    def put(self, key: str, snap: Snapshot) -> None:
        with self._lock:
            self._keep_in_ram(key, snap)
            if self.directory is None or self.disk_bytes <= 0 or snap.nbytes > self.disk_bytes:
                return
            if key.startswith(RAM_ONLY):
                return
            self._pending[key] = snap
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_pending, name="hearth-kv-writer", daemon=True
                )
                self._writer.start()

    def discard(self, key: str) -> None:
        """Forget a key in both tiers (e.g. its conversation was deleted)."""
        with self._lock:
            old = self._ram.pop(key, None)
            if old is not None:
                self._ram_used -= old.nbytes
            self._pending.pop(key, None)
        if self.directory is not None:
            self._path(key).unlink(missing_ok=True)

    def flush(self) -> None:
        with self._lock:
            while self._writer is not None:
                self._idle.wait()

    def ram_keys(self) -> list[str]:
        with self._lock:
            return list(self._ram)

    @property
    def ram_used(self) -> int:
        return self._ram_used

    def disk_used(self) -> int:
        return sum(size for _, size, _ in self._disk_files())

    # RAM tier

    def _keep_in_ram(self, key: str, snap: Snapshot) -> None:
        old = self._ram.pop(key, None)
        if old is not None:
            self._ram_used -= old.nbytes
        if snap.nbytes > self.ram_bytes:
            return  # bigger than the whole budget: disk only
        self._ram[key] = snap
        self._ram_used += snap.nbytes
        while self._ram_used > self.ram_bytes:
            _, evicted = self._ram.popitem(last=False)
            self._ram_used -= evicted.nbytes

    # disk tier

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + SUFFIX)

    def _touch(self, key: str) -> None:
        if self.directory is not None:
            try:
                os.utime(self._path(key))
            except OSError:  # not written yet, or evicted: nothing to refresh
                pass

    def _write_pending(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._writer = None
                    self._idle.notify_all()
                    return
                key = next(iter(self._pending))
                snap = self._pending.pop(key)
            try:
                self._write(key, snap)
                self._evict_disk()
            except OSError as e:  # a full or read-only disk only costs the cache
                log.warning("KV snapshot not written to disk: %s", e)

    def _write(self, key: str, snap: Snapshot) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tokens = snap.tokens.tobytes() if snap.tokens.itemsize == 4 else array("i", snap.tokens).tobytes()
        header = json.dumps(
            {
                "format": FORMAT,
                "fingerprint": self.fingerprint,
                "key": key,
                "n_tokens": len(snap.tokens),
                "clean": snap.clean,
                "state_bytes": len(snap.state),
                "crc32": zlib.crc32(snap.state, zlib.crc32(tokens)),
            }
        ).encode()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".part")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + struct.pack("<I", len(header)) + header)
                f.write(tokens)
                f.write(snap.state)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)

    def _read(self, key: str) -> Snapshot | None:
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            with path.open("rb") as f:
                snap = self._parse(f, key, path)
            if snap is not None:
                os.utime(path)  # recently used: last in line for eviction
            return snap
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, struct.error) as e:
            log.warning("KV snapshot %s ignored: unreadable (%s)", path.name, e)
            return None

    def _parse(self, f, key: str, path: Path) -> Snapshot | None:
        if f.read(len(MAGIC)) != MAGIC:
            log.warning("KV snapshot %s ignored: not a snapshot file", path.name)
            return None
        (size,) = struct.unpack("<I", f.read(4))
        if size > MB:
            raise ValueError("header too large")
        header = json.loads(f.read(size))
        if header.get("format") != FORMAT or header.get("fingerprint") != self.fingerprint:
            log.info("KV snapshot %s ignored: made for another model or settings", path.name)
            return None
        if header.get("key") != key:
            log.warning("KV snapshot %s ignored: it belongs to another conversation", path.name)
            return None
        n_tokens, n_state = int(header["n_tokens"]), int(header["state_bytes"])
        tokens = array("i")
        raw = f.read(4 * n_tokens)
        state = bytearray(n_state)
        got = f.readinto(state)
        if len(raw) != 4 * n_tokens or got != n_state or f.read(1):
            log.warning("KV snapshot %s ignored: truncated or padded", path.name)
            return None
        if zlib.crc32(state, zlib.crc32(raw)) != header["crc32"]:
            log.warning("KV snapshot %s ignored: checksum mismatch (corrupt)", path.name)
            return None
        tokens.frombytes(raw)
        return Snapshot(tokens=tokens, clean=min(int(header["clean"]), n_tokens), state=state)

    def _disk_files(self) -> list[tuple[Path, int, float]]:
        if self.directory is None or not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob("*" + SUFFIX):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found.append((path, st.st_size, st.st_mtime))
        return found

    def _evict_disk(self) -> None:
        files = sorted(self._disk_files(), key=lambda f: f[2])  # oldest first
        used = sum(size for _, size, _ in files)
        for path, size, _ in files:
            if used <= self.disk_bytes:
                break
            path.unlink(missing_ok=True)
            used -= size


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
