"""Presets as JSON files: the format, its validation, and the built-in ones shipped in assets/presets.

A file looks like ``{"format": "hearth-preset", "version": 1, "name": ..., "description": ...,
"config": {GenerationConfig fields}}``; fields left out of ``config`` keep their defaults. A file
is checked completely before anything is saved, so a bad one changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import GenerationConfig
from ..errors import ConfigError, EngineError

FORMAT = "hearth-preset"
#: the newest file version this Hearth reads and the one it writes
VERSION = 1
#: a preset is a few hundred bytes: anything much bigger is not one
MAX_BYTES = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    config: GenerationConfig
    description: str = ""


def default_presets_dir() -> Path:
    """The presets shipped with Hearth (assets/presets in the repository)."""
    return Path(__file__).resolve().parents[2] / "assets" / "presets"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 80:
        raise ConfigError("A preset needs a name of 1 to 80 characters.", field="preset")
    return name.strip()


def parse_preset(text: str | bytes) -> Preset:
    """One preset from a file's text; ConfigError says what is wrong with it."""
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"That is not a preset file: it is over {MAX_BYTES // 1024} KB.", field="preset_file"
        )
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"That preset file is not valid JSON ({e}).", field="preset_file") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(
            f'That is not a Hearth preset file: it needs "format": "{FORMAT}".', field="preset_file"
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError('That preset file has no valid "version" (a whole number).', field="preset_file")
    if version > VERSION:
        raise ConfigError(
            f"That preset was written by a newer Hearth (format version {version}; this one reads "
            f"up to {VERSION}). Update Hearth to import it.",
            field="preset_file",
        )
    values = data.get("config", {})
    if not isinstance(values, dict):
        raise ConfigError('A preset\'s "config" must be an object of settings.', field="preset_file")
    description = data.get("description", "")
    try:
        config = GenerationConfig.from_values(values)
    except EngineError as e:
        raise ConfigError(f"That preset has a bad setting: {e}", field="preset_file") from e
    return Preset(
        name=check_name(data.get("name")),
        config=config,
        description=description if isinstance(description, str) else "",
    )


def format_preset(preset: Preset) -> str:
    """The file text of ``preset`` (every setting written out, so other defaults do not matter)."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "name": preset.name,
        "description": preset.description,
        "config": preset.config.to_dict(),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def load_presets_dir(directory: Path) -> dict[str, Preset]:
    """Every ``*.json`` preset in ``directory``, by name, in file-name order.

    These ship with Hearth, so a broken one is a bug: it raises rather than hides.
    """
    presets: dict[str, Preset] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            preset = parse_preset(path.read_bytes())
        except ConfigError as e:
            raise ConfigError(f"Built-in preset {path.name}: {e}", field="preset_file") from e
        presets[preset.name] = preset
    return presets
