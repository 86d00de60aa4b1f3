"""Generation presets: built-in ones and those a user saves."""

from __future__ import annotations

import json

from ..config import GenerationConfig
from ..errors import ConfigError, NotFoundError
from .conversations import now_iso
from .db import Database

BUILTIN_PRESETS: dict[str, GenerationConfig] = {
    "Precise": GenerationConfig(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.05),
    "Balanced": GenerationConfig(),
    "Creative": GenerationConfig(temperature=1.1, top_k=100, top_p=0.98, min_p=0.02, repeat_penalty=1.05),
}


class PresetStore:
    def __init__(self, database: Database):
        self._database = database

    def names(self) -> list[str]:
        with self._database.read() as db:
            saved = [r["name"] for r in db["presets"].rows_where(order_by="name")]
        return list(BUILTIN_PRESETS) + [n for n in saved if n not in BUILTIN_PRESETS]

    def get(self, name: str) -> GenerationConfig:
        if name in BUILTIN_PRESETS:
            return BUILTIN_PRESETS[name]
        with self._database.read() as db:
            rows = list(db["presets"].rows_where("name = ?", [name]))
        if not rows:
            raise NotFoundError(f"No preset named {name!r}.")
        return GenerationConfig.from_values(json.loads(rows[0]["config"]))

    def save(self, name: str, config: GenerationConfig) -> None:
        name = name.strip()
        if not name or len(name) > 80:
            raise ConfigError("A preset needs a name of 1 to 80 characters.", field="preset")
        if name in BUILTIN_PRESETS:
            raise ConfigError(f"{name!r} is a built-in preset; choose another name.", field="preset")
        with self._database.tx() as db:
            db.table("presets").upsert(
                {"name": name, "config": json.dumps(config.to_dict()), "builtin": 0, "created_at": now_iso()},
                pk="name",
            )

    def delete(self, name: str) -> None:
        if name in BUILTIN_PRESETS:
            raise ConfigError(f"{name!r} is built in and cannot be deleted.", field="preset")
        with self._database.tx() as db:
            db.table("presets").delete_where("name = ?", [name])
