"""Tool schemas generated from typed, docstringed functions (never hand-written JSON).

A tool is a plain function whose first parameter is the call context (left out of the
schema); every other parameter needs a type annotation and a line under ``Args:`` in
a Google-style docstring. ``function_schema`` returns the OpenAI-style
``{"name", "description", "parameters"}`` dict; ``check_arguments`` validates a
model's arguments against it.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from ..errors import MemoryError_

_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def function_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """JSON schema of ``fn``'s parameters after the first, from its annotations and docstring."""
    doc = inspect.getdoc(fn)
    if not doc:
        raise TypeError(f"tool {fn.__name__} needs a docstring")
    description, arg_docs = _parse_docstring(doc)
    hints = typing.get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())[1:]  # the first is the call context
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in params:
        if p.name not in hints:
            raise TypeError(f"tool {fn.__name__}: parameter {p.name!r} needs a type annotation")
        if p.name not in arg_docs:
            raise TypeError(
                f"tool {fn.__name__}: parameter {p.name!r} needs a line under Args: in the docstring"
            )
        prop = {**_json_type(hints[p.name], fn.__name__, p.name), "description": arg_docs[p.name]}
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            prop["default"] = p.default
        properties[p.name] = prop
    return {
        "name": fn.__name__,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


def _json_type(hint: Any, fn_name: str, param: str) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if origin is typing.Literal:
        values = list(typing.get_args(hint))
        return {"type": _JSON_TYPES[type(values[0])], "enum": values}
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            return {**_json_type(inner[0], fn_name, param), "nullable": True}
    raise TypeError(f"tool {fn_name}: parameter {param!r} has a type a tool cannot take: {hint!r}")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Google style: summary paragraph(s), then ``Args:`` with ``name: text`` lines."""
    head, _, rest = doc.partition("\nArgs:")
    description = " ".join(head.split())
    args: dict[str, str] = {}
    current = None
    for line in rest.splitlines():
        if re.match(r"^\S", line):  # a new section (Returns:, Raises:) ends Args
            break
        m = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
        if m:
            current = m.group(1)
            args[current] = m.group(2).strip()
        elif current and line.strip():
            args[current] += " " + line.strip()
    return description, args


def check_arguments(schema: dict[str, Any], arguments: Any) -> dict[str, Any]:
    """Validate a model's arguments for ``schema``; return them with defaults filled in."""
    name = schema["name"]
    if not isinstance(arguments, dict):
        raise MemoryError_(f"The arguments of {name} must be a JSON object; got {type(arguments).__name__}.")
    props = schema["parameters"]["properties"]
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        raise MemoryError_(
            f"{name} has no argument(s) {', '.join(unknown)}; it takes {', '.join(props) or 'none'}."
        )
    missing = [p for p in schema["parameters"]["required"] if p not in arguments]
    if missing:
        raise MemoryError_(f"{name} needs the argument(s) {', '.join(missing)}.")
    checked: dict[str, Any] = {}
    for key, prop in props.items():
        if key not in arguments:
            checked[key] = prop.get("default")
            continue
        checked[key] = _check_value(name, key, prop, arguments[key])
    return checked


def _check_value(name: str, key: str, prop: dict[str, Any], value: Any) -> Any:
    if value is None and prop.get("nullable"):
        return None
    kind = prop["type"]
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise MemoryError_(f"Argument {key} of {name} must be a {kind}; got {value!r}.")
    if "enum" in prop and value not in prop["enum"]:
        raise MemoryError_(
            f"Argument {key} of {name} must be one of {', '.join(map(str, prop['enum']))}; got {value!r}."
        )
    return value
