"""API keys: where the key comes from, and when one is required. No FastAPI here (the
command line imports this module before any web library loads); its flags are cli/serve_cmd.py's."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.errors import ConfigError
from engine.settings import is_loopback

ENV_KEY = "HEARTH_API_KEY"


def api_key_from(args: argparse.Namespace) -> str | None:
    """The configured key: --api-key-file, else --api-key (or $HEARTH_API_KEY, its default); None = no key."""
    path: Path | None = getattr(args, "api_key_file", None)
    if path is not None:
        try:
            text = path.expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"Could not read the API key file {path}: {e}", field="api_key_file") from e
        lines = text.strip().splitlines()
        return _checked(lines[0] if lines else "", "api_key_file")
    key: str | None = getattr(args, "api_key", None)
    return None if key is None else _checked(key, "api_key")


def _checked(key: str, field: str) -> str:
    key = key.strip()
    if len(key) < 8:
        raise ConfigError("The API key must be at least 8 characters.", field=field)
    if any(c.isspace() or not c.isprintable() for c in key):
        raise ConfigError("The API key must be printable characters without spaces.", field=field)
    return key


def require_api_key_for(host: str, key: str | None) -> None:
    """Refuse to serve the API beyond loopback without a key: it reads and writes the user's data."""
    if key is None and not is_loopback(host):
        raise ConfigError(
            f"Listening on {host} exposes the /v1 API to the network: set an API key with "
            f"--api-key-file PATH, --api-key KEY or {ENV_KEY}, or listen on 127.0.0.1.",
            field="api_key",
        )
