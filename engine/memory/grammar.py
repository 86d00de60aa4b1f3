"""A llama.cpp GBNF grammar for one tool call, built from generated tool schemas.

The model's output is forced into compact JSON of one of these shapes, so it always
parses (small models otherwise drift into prose):

    {"tool":"none"}
    {"tool":"NAME","arguments":{"arg":VALUE,...}}

Strings are bounded in length (a runaway string cannot eat the whole token budget),
there is no free whitespace (no endless blank runs), and string arguments can be
narrowed to a fixed set of values (e.g. the block labels that exist right now).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

NO_TOOL = "none"

#: longest string argument the grammar lets the model write, in characters
MAX_STRING_CHARS = 120

_COMMON = r"""
string ::= "\"" char{0,%d} "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" ["\\/bfnrt]
integer ::= "-"? ("0" | [1-9] [0-9]{0,8})
number ::= integer ("." [0-9]{1,6})?
boolean ::= "true" | "false"
"""


def literal(value: str) -> str:
    """A GBNF literal matching exactly the JSON text ``value``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tool_call_grammar(
    schemas: Sequence[Mapping[str, Any]],
    *,
    choices: Mapping[str, Sequence[str]] | None = None,
    max_string_chars: int = MAX_STRING_CHARS,
    allow_none: bool = True,
) -> str:
    """GBNF for one call of any tool in ``schemas`` or ``{"tool":"none"}``.

    ``choices`` maps an argument name to the only values allowed for it (for every tool);
    ``allow_none=False`` forces a call (when the caller already knows one is wanted).
    Optional arguments may be left out (the model may omit them, or give them in order).
    """
    choices = choices or {}
    rules: list[str] = []
    alternatives = [literal(json.dumps(NO_TOOL))] if allow_none else []
    for schema in schemas:
        rule = "call-" + _rule_name(schema["name"])
        args = _arguments(schema, choices)
        body = (
            literal(json.dumps(schema["name"]) + ',"arguments":{')
            + (f" {args} " if args else " ")
            + literal("}")
        )
        rules.append(f"{rule} ::= {body}")
        alternatives.append(rule)
    opening = literal('{"tool":')
    root = f"root ::= {opening} ( {' | '.join(alternatives)} ) {literal('}')}"
    return "\n".join([root, *rules]) + _COMMON % max_string_chars


def _arguments(schema: Mapping[str, Any], choices: Mapping[str, Sequence[str]]) -> str:
    props = schema["parameters"]["properties"]
    required = [k for k in props if k in schema["parameters"]["required"]]
    optional = [k for k in props if k not in required]
    members = {k: _member(k, props[k], choices) for k in props}
    comma = literal(",")
    if required:
        return f" {comma} ".join(members[k] for k in required) + _optional_chain(optional, members)
    if optional:  # the first optional argument has no comma before it
        return f"( {members[optional[0]]}{_optional_chain(optional[1:], members)} )?"
    return ""


def _optional_chain(keys: Sequence[str], members: Mapping[str, str]) -> str:
    """(\",\" a (\",\" b)?)? : a later optional argument only after the earlier ones."""
    chain = ""
    for key in reversed(keys):
        chain = f" ( {literal(',')} {members[key]}{chain} )?"
    return chain


def _member(key: str, prop: Mapping[str, Any], choices: Mapping[str, Sequence[str]]) -> str:
    value = _value(prop, choices.get(key))
    return f"{literal(json.dumps(key) + ':')} {value}"


def _value(prop: Mapping[str, Any], allowed: Sequence[str] | None) -> str:
    values = list(allowed) if allowed is not None and prop["type"] == "string" else prop.get("enum")
    if values:
        rule = "( " + " | ".join(literal(json.dumps(v)) for v in values) + " )"
    else:
        rule = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}[
            prop["type"]
        ]
    if prop.get("nullable"):
        rule = f'( {rule} | "null" )'
    return rule


def _rule_name(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower())
