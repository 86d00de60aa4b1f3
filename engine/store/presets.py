"""Generation presets: the built-in ones (files in assets/presets) and those a user saves."""

from __future__ import annotations

import json

from ..config import GenerationConfig
from ..errors import ConfigError, NotFoundError
from .conversations import now_iso
from .db import Database
from .preset_files import (
    Preset,
    check_name,
    default_presets_dir,
    format_preset,
    load_presets_dir,
    parse_preset,
)


class PresetStore:
    def __init__(self, database: Database, builtin: dict[str, Preset] | None = None):
        self._database = database
        #: read once at start; None = the files shipped in assets/presets
        self._builtin = load_presets_dir(default_presets_dir()) if builtin is None else builtin

    @property
    def builtin_names(self) -> list[str]:
        return list(self._builtin)

    def names(self) -> list[str]:
        with self._database.read() as db:
            saved = [r["name"] for r in db["presets"].rows_where(order_by="name")]
        return list(self._builtin) + [n for n in saved if n not in self._builtin]

    def get(self, name: str) -> GenerationConfig:
        return self.preset(name).config

    def preset(self, name: str) -> Preset:
        if name in self._builtin:
            return self._builtin[name]
        with self._database.read() as db:
            rows = list(db["presets"].rows_where("name = ?", [name]))
        if not rows:
            raise NotFoundError(f"No preset named {name!r}.")
        return Preset(name=name, config=GenerationConfig.from_values(json.loads(rows[0]["config"])))

    def save(self, name: str, config: GenerationConfig) -> None:
        name = check_name(name)
        if name in self._builtin:
            raise ConfigError(f"{name!r} is a built-in preset; choose another name.", field="preset")
        with self._database.tx() as db:
            db.table("presets").upsert(
                {"name": name, "config": json.dumps(config.to_dict()), "builtin": 0, "created_at": now_iso()},
                pk="name",
            )

    def delete(self, name: str) -> None:
        if name in self._builtin:
            raise ConfigError(f"{name!r} is built in and cannot be deleted.", field="preset")
        with self._database.tx() as db:
            db.table("presets").delete_where("name = ?", [name])

    def export(self, name: str) -> str:
        """The preset as a JSON file's text."""
        return format_preset(self.preset(name))

    def import_file(self, text: str | bytes) -> str:
        """Save the preset in a JSON file's text (replacing a saved one of that name); returns its
        name. A malformed file, one from a newer Hearth or one named like a built-in saves nothing."""
        preset = parse_preset(text)
        self.save(preset.name, preset.config)
        return preset.name
