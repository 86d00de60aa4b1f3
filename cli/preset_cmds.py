"""presets list | export | import: generation presets as JSON files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import build_services


def register(sub) -> None:
    p = sub.add_parser("presets", help="list, export and import generation presets (JSON files)")
    actions = p.add_subparsers(dest="preset_action", required=True)
    a = actions.add_parser("list", help="built-in and saved presets")
    a.set_defaults(handler=list_presets)
    a = actions.add_parser("export", help="write a preset as JSON (to stdout, or --output FILE)")
    a.add_argument("name", help="the preset's name")
    a.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: stdout)")
    a.set_defaults(handler=export_preset)
    a = actions.add_parser("import", help="save the preset in a JSON file (a malformed file saves nothing)")
    a.add_argument("file", type=Path, help="a preset file, e.g. one written by presets export")
    a.set_defaults(handler=import_preset)


def list_presets(args: argparse.Namespace) -> int:
    services = build_services(args, load_model=False)
    try:
        builtin = set(services.presets.builtin_names)
        for name in services.presets.names():
            print(f"{name}{'  (built in)' if name in builtin else ''}")
        return 0
    finally:
        services.close()


def export_preset(args: argparse.Namespace) -> int:
    services = build_services(args, load_model=False)
    try:
        text = services.presets.export(args.name)
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text, encoding="utf-8")
        return 0
    finally:
        services.close()


def import_preset(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError

    try:
        data = args.file.read_bytes()
    except OSError as e:
        raise ConfigError(f"Cannot read {args.file}: {e.strerror or e}.", field="preset_file") from e
    services = build_services(args, load_model=False)
    try:
        name = services.presets.import_file(data)
        print(f"Imported preset {name!r}.")
        return 0
    finally:
        services.close()
