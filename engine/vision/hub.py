"""Where CLIP weights can come from without a long wait: the local Hugging Face cache,
and a quick check of whether the Hub can be reached at all.

huggingface_hub retries an unreachable Hub for about 23 s per file (open_clip asks for
two files), so Hearth looks in the cache first and probes the network for a few
seconds before letting open_clip try a download.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """True when the user asked Hugging Face libraries never to touch the network."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def cached_file(repo_id: str, filename: str) -> Path | None:
    """The cached copy of ``repo_id/filename`` in the Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id=repo_id, filename=filename)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout_s`` (DNS included)."""
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = "https://huggingface.co"
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    # a thread, because getaddrinfo ignores socket timeouts and can hang on a dead resolver
    worker = threading.Thread(target=probe, daemon=True, name="hearth-hub-probe")
    worker.start()
    worker.join(timeout_s + 0.5)
    return bool(result and result[0])
