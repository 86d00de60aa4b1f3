"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import GenerationConfig
    from engine.factory import Services

log = logging.getLogger("hearth.cli")


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per GenerationConfig field (--temperature, --top-k, ... --stop)."""
    from engine.config import GenerationConfig

    g = parser.add_argument_group("generation settings")
    for f in dataclasses.fields(GenerationConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "stop":
            g.add_argument(flag, action="append", default=None, help=f.metadata["help"] + " (repeatable)")
            continue
        if f.name in ("logit_bias", "samplers"):
            g.add_argument(flag, default=None, help=f.metadata["help"])
            continue
        kind = int if f.type in ("int", int) else float
        g.add_argument(
            flag,
            type=kind,
            default=None,
            help=f"{f.metadata['help']} [{f.metadata['min']}..{f.metadata['max']}, default {f.default}]",
        )
    g.add_argument(
        "--preset",
        default=None,
        help="start from a saved or built-in preset (see: python run.py presets list)",
    )


def generation_config_from(args: argparse.Namespace, services: Services | None = None) -> GenerationConfig:
    from engine.config import GenerationConfig

    base = GenerationConfig()
    if getattr(args, "preset", None) and services is not None:
        base = services.presets.get(args.preset)
    values = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(GenerationConfig)}
    values = {k: v for k, v in values.items() if v is not None}
    return GenerationConfig.from_values({**base.to_dict(), **values})


#: control characters but tab and newline: a terminal acts on escape sequences (retitle the
#: window, write the clipboard), and documents, file names and model output are not trusted
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Untrusted text as it may reach a terminal: without control characters."""
    return _CONTROL.sub("", text)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def build_services(
    args: argparse.Namespace, *, load_model: bool = True, settings: Any = None, warm_up: bool = False
):
    """Services for a command, holding the data directory (refused while another process has it)."""
    from engine.factory import build

    from . import settings_from

    services = build(
        settings or settings_from(args), load_model=load_model, owner=owner_of(args), warm_up=warm_up
    )
    for warning in services.warnings:
        log.warning("%s", warning)
    return services


def owner_of(args: argparse.Namespace) -> dict[str, Any]:
    """How this process describes itself in the data directory's lock file."""
    owner: dict[str, Any] = {"command": f"python run.py {getattr(args, 'command', None) or 'serve'}"}
    if getattr(args, "port", None) is not None and getattr(args, "host", None):
        host = f"[{args.host}]" if ":" in args.host else args.host
        owner.update(port=args.port, url=f"http://{host}:{args.port}")
    return owner


def check_data_dir(args: argparse.Namespace) -> None:
    """Refuse at once when another process holds the data directory, before any slow import
    (a second server must say so within seconds, not after loading gradio and a model)."""
    data_dir = getattr(args, "data_dir", None)
    if data_dir is None or getattr(args, "reads_beside_a_server", False):
        return
    from engine.store.datadir import probe

    probe(data_dir.expanduser())
