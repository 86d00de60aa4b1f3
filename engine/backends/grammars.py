"""GBNF grammars for JSON answers (the API's ``response_format``), from llama-cpp-python's
converters; llama_cpp is imported lazily, so importing this module stays cheap."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError


def json_schema_grammar(schema: Any, *, field: str = "response_format") -> str:
    """A GBNF grammar that only lets the model write JSON valid under ``schema``; a schema the
    converter cannot take (it asserts on many) is a ConfigError on ``field``."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as e:  # noqa: BLE001 - third-party code on a client's schema: any failure is the schema's
        raise ConfigError(f"This JSON schema cannot be turned into a grammar: {e}", field=field) from e


def json_object_grammar() -> str:
    """A GBNF grammar for any JSON object."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF
