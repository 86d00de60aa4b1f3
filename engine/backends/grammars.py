"""GBNF grammars for JSON answers (the API's ``response_format``), from llama-cpp-python's
converters; llama_cpp is imported lazily, so importing this module stays cheap."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError

_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def json_schema_grammar(schema: Any, *, field: str = "response_format") -> str:
    """A GBNF grammar that only lets the model write JSON valid under ``schema``; a schema the
    converter cannot take (it asserts on many) is a ConfigError on ``field``."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as e:  # noqa: BLE001 - third-party code on a client's schema: any failure is the schema's
        raise ConfigError(f"This JSON schema cannot be turned into a grammar: {e}", field=field) from e
    # the converter's strings take raw control characters (a newline in a story), which JSON
    # forbids: strict parsers (pydantic, the openai SDK's parse) refused such answers
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR)


def json_object_grammar() -> str:
    """A GBNF grammar for any JSON object."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF
