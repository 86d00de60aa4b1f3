"""Run ``run.py`` with the engine's own token times recorded (benchmarks only).

  python bench/client_hook.py STAMPS_FILE run.py [run.py arguments...]

The in-process backend's ``stream_chat`` is wrapped so every generation appends one JSON
line to STAMPS_FILE: the wall-clock time (``time.time()``) at which each text chunk left
the engine, and the text. Clients in other processes (the page in Chromium, the CLI's
stdout, the API) stamp with the same clock, so their lag behind the engine can be read.
Nothing else changes: ``run.py`` runs as ``__main__`` with its own arguments.
"""

from __future__ import annotations

import json
import runpy
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def install(stamps_file: Path) -> None:
    from engine.backends.llama_cpp import LlamaCppBackend
    from engine.types import Chunk

    original = LlamaCppBackend.stream_chat

    def stream_chat(self: LlamaCppBackend, *args: object, **kwargs: object) -> Iterator[Chunk]:
        stamps: list[float] = []
        parts: list[str] = []
        try:
            for chunk in original(self, *args, **kwargs):  # type: ignore[arg-type]
                if chunk.text:
                    stamps.append(time.time())
                    parts.append(chunk.text)
                yield chunk
        finally:
            with stamps_file.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"stamps": stamps, "text": "".join(parts)}) + "\n")

    LlamaCppBackend.stream_chat = stream_chat  # type: ignore[method-assign]


def main() -> None:
    stamps_file, script, *rest = sys.argv[1:]
    root = Path(script).resolve().parent
    sys.path.insert(0, str(root))
    install(Path(stamps_file))
    sys.argv = [script, *rest]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
