"""Flags that fall back to an environment variable: one mechanism for every one of them.

A flag's variable is derived, never spelled out: a ``Settings`` field gives its flag, type,
default and variable (``n_ctx`` -> ``--n-ctx``, ``HEARTH_N_CTX``, int, 4096); a switch that
turns a setting off (``--no-memory``) reads the setting's own variable (``HEARTH_MEMORY=0``);
other flags take the variable named after them (``--port`` -> ``HEARTH_PORT``).

The variable's text becomes the flag's default as a string, and argparse converts it with
the flag's type only when it parses: a malformed value is a usage error that names the flag
and the variable, and ``--help`` works whatever the environment holds. ``env_options`` lists
them all, for the README's table (tests/test_cli.py checks that the README shows exactly
``markdown_table(global_parser())``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

ENV_PREFIX = "HEARTH_"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

#: argparse's container for flags: a parser or one of its argument groups
Container = argparse._ActionsContainer


class FromEnv(str):
    """A flag's default read from an environment variable; it remembers which one."""

    variable: str

    def __new__(cls, value: str, variable: str) -> FromEnv:
        text = super().__new__(cls, value)
        text.variable = variable
        return text

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (str(self),)  # copies and pickles are plain text


def from_environment(value: object) -> bool:
    """Whether a parsed value came from a variable rather than the command line."""
    return isinstance(value, FromEnv)


def env_name(flag: str) -> str:
    """``--n-ctx`` or ``n_ctx`` -> ``HEARTH_N_CTX``."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def parse_bool(text: str) -> bool:
    """The one reading of every boolean variable: 1/true/yes/on or 0/false/no/off."""
    word = text.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise argparse.ArgumentTypeError(f"{str(text)!r} is not one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def parse_auto_bool(text: str) -> bool | None:
    """A boolean that may also be left to Hearth: the Model tab's words (``AUTO_ON_OFF``), any
    boolean word, and "" for auto."""
    from engine.settings import AUTO_ON_OFF

    word = text.strip().lower() or "auto"
    return AUTO_ON_OFF[word] if word in AUTO_ON_OFF else parse_bool(text)


def _converter(kind: Callable[[str], Any], type_name: str) -> Callable[[str], Any]:
    """``kind`` with argparse's usage message, naming the variable when the text came from it."""

    def convert(text: str) -> Any:
        try:
            return kind(text)
        except argparse.ArgumentTypeError as e:
            message = str(e)
        except (TypeError, ValueError):
            message = f"invalid {type_name} value: {str(text)!r}"
        if isinstance(text, FromEnv):
            message += f" (from {text.variable})"
        raise argparse.ArgumentTypeError(message)

    return convert


class EnvAction(argparse.Action):
    """Marks a flag that falls back to the environment variable ``env``."""

    env: str


class _Store(argparse._StoreAction, EnvAction):
    def __init__(self, *args: Any, env: str, **kwargs: Any) -> None:
        self.env = env
        super().__init__(*args, **kwargs)


class _Append(argparse._AppendAction, EnvAction):
    def __init__(self, *args: Any, env: str, **kwargs: Any) -> None:
        self.env = env
        super().__init__(*args, **kwargs)


class _Switch(EnvAction):
    """A flag without a value that sets True; its default may come from a boolean variable."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, env: str, **kwargs: Any) -> None:
        self.env = env
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)


def env_option(
    container: Container,
    flag: str,
    *,
    help: str,
    env: str | None = None,
    type: Callable[[str], Any] | None = None,
    default: Any = None,
    switch: bool = False,
    repeat: bool = False,
    keep_empty: bool = False,
    mark_origin: bool = False,
    type_name: str | None = None,
    **kwargs: Any,
) -> argparse.Action:
    """Add ``flag``, falling back to the variable ``env`` (by default derived from the flag).

    ``switch``: a flag without a value; ``--no-X`` reads ``HEARTH_X`` with 0 meaning the switch
    is on. ``repeat``: each use adds a value; the variable holds comma-separated values.
    ``keep_empty``: an empty variable is a value (an empty embedding prefix), not "unset".
    ``mark_origin``: a value from the variable stays a ``FromEnv`` (see ``from_environment``);
    otherwise every value is plain text or ``type``'s result.
    """
    negated = switch and flag.startswith("--no-")
    variable = env or env_name(flag.removeprefix("--no-") if negated else flag)
    text = os.environ.get(variable)
    if text is not None and not (text.strip() or keep_empty):
        text = None
    hint = f"{variable}=0" if negated else f"{variable}=1" if switch else variable
    help = f"{help} [env {hint}]"
    if switch:
        value = FromEnv(text, variable) if text is not None else bool(default)
        return container.add_argument(
            flag,
            action=_Switch,
            env=variable,
            type=_converter((lambda t: not parse_bool(t)) if negated else parse_bool, "boolean"),
            default=value,
            help=help,
        )
    if repeat:
        values = [v.strip() for v in (text or "").split(",") if v.strip()] if text else list(default or [])
        return container.add_argument(flag, action=_Append, env=variable, default=values, help=help, **kwargs)
    if type is None:
        type = _same if mark_origin else str
    convert = _converter(type, type_name or _type_name(type))
    value = FromEnv(text, variable) if text is not None else default
    return container.add_argument(
        flag, action=_Store, env=variable, type=convert, default=value, help=help, **kwargs
    )


def setting_option(container: Container, name: str, *, help: str, **overrides: Any) -> argparse.Action:
    """A flag for the ``Settings`` field ``name``: its flag, type, default and variable follow
    from the field (a boolean that is on by default becomes ``--no-NAME``)."""
    from engine.config import Settings

    field = next(f for f in dataclasses.fields(Settings) if f.name == name)
    kind = _plain_type(typing.get_type_hints(Settings)[name])
    default = None if field.default is dataclasses.MISSING else field.default
    options: dict[str, Any] = {"env": env_name(name), "default": default}
    flag = "--" + name.replace("_", "-")
    if kind is bool:
        flag = flag.replace("--", "--no-", 1) if default else flag
        options.update(switch=True, default=False)
    else:
        options["type"] = None if kind is str else kind
    options.update(overrides)
    return env_option(container, options.pop("flag", flag), help=help, **options)


def _same(text: str) -> str:
    return text


def _type_name(kind: Callable[[str], Any]) -> str:
    return kind.__name__ if isinstance(kind, type) else "value"


def _plain_type(hint: Any) -> Any:
    """``int | None`` -> int; ``str`` -> str."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        [hint] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return hint


class EnvOption(NamedTuple):
    variable: str
    flag: str
    #: "all" for a global flag, else the command that takes it
    command: str
    #: where the parsed value lands in the namespace
    dest: str


def env_options(parser: argparse.ArgumentParser, command: str = "all") -> Iterator[EnvOption]:
    """Every flag of ``parser`` and its commands that falls back to a variable."""
    for action in parser._actions:
        if isinstance(action, EnvAction):
            yield EnvOption(action.env, action.option_strings[0], command, action.dest)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from env_options(sub, name)


def markdown_table(parser: argparse.ArgumentParser) -> str:
    """The README's table of variables."""
    rows = sorted(env_options(parser))
    lines = ["| variable | flag | command |", "|---|---|---|"]
    lines += [f"| `{o.variable}` | `{o.flag}` | {o.command} |" for o in rows]
    return "\n".join(lines)
