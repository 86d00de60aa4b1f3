"""export, import, branches, switch, fork, compare: conversations as trees, and their files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_generation_flags, build_services, generation_config_from, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="export a conversation (JSON: every branch; md: the path shown)")
    p.add_argument("conversation", help="conversation id")
    p.add_argument("--format", choices=["md", "json"], default="md")
    p.add_argument("--output", "-o", type=Path, default=None, help="write to this file instead of stdout")
    p.set_defaults(handler=export)

    p = sub.add_parser("import", help="import a conversation exported as JSON (a new conversation)")
    p.add_argument("file", type=Path, help="the .json file ('-' reads stdin)")
    p.set_defaults(handler=import_)

    p = sub.add_parser("branches", help="the path shown, with each message's place among its siblings")
    p.add_argument("conversation", help="conversation id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=branches)

    p = sub.add_parser("switch", help="show another branch: the next turn's prompt follows it")
    p.add_argument("message", help="id of the message (a sibling) to show")
    p.set_defaults(handler=switch)

    p = sub.add_parser("fork", help="copy the path up to a message into a new conversation")
    p.add_argument("message", help="message id")
    p.add_argument("--title", default=None)
    p.set_defaults(handler=fork)

    p = sub.add_parser("compare", help="answer a conversation's last message again with 2-3 presets")
    p.add_argument("conversation", help="conversation id")
    p.add_argument(
        "--with",
        dest="presets",
        action="append",
        required=True,
        help="a preset name, or 'current' for the generation flags (repeat 2-3 times)",
    )
    p.add_argument("--seeds", default="", help="comma-separated seeds, one per --with (-1 = draw one)")
    p.add_argument("--json", action="store_true")
    add_generation_flags(p)
    p.set_defaults(handler=compare)


def export(args: argparse.Namespace) -> int:
    services = build_services(args, load_model=False)
    try:
        if args.format == "json":
            text = json.dumps(services.branches.export_json(args.conversation), ensure_ascii=False, indent=1)
        else:
            text = services.branches.export_markdown(args.conversation)
        if args.output:
            args.output.write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
        return 0
    finally:
        services.close()


def import_(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError

    try:
        data = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    except OSError as e:
        raise ConfigError(f"Could not read {args.file}: {e.strerror}.", field="file") from e
    services = build_services(args, load_model=False)
    try:
        conversation = services.branches.import_json(data)
        print(conversation.id)
        return 0
    finally:
        services.close()


def branches(args: argparse.Namespace) -> int:
    services = build_services(args, load_model=False)
    try:
        points = services.branches.branch_points(args.conversation)
        texts = {m.id: m.content for m in services.conversations.messages(args.conversation)}
        if args.json:
            print_json([{**p.__dict__, "content": texts.get(p.message_id, "")} for p in points])
            return 0
        for p in points:
            line = " ".join(texts.get(p.message_id, "").split())[:60]
            place = f"{p.position}/{p.total}" if p.total > 1 else "   "
            print(f"{p.message_id}  {place:>5}  {p.role:<9} {line}")
        return 0
    finally:
        services.close()


def switch(args: argparse.Namespace) -> int:
    services = build_services(args, load_model=False)
    try:
        path = services.branches.switch(args.message)
        print(f"{path[-1].conversation_id}: {len(path)} messages on the path shown")
        return 0
    finally:
        services.close()


def fork(args: argparse.Namespace) -> int:
    services = build_services(args, load_model=False)
    try:
        print(services.branches.fork(args.message, title=args.title).id)
        return 0
    finally:
        services.close()


def compare(args: argparse.Namespace) -> int:
    from engine.compare import CompareColumn, answers, compare_turn, seeded

    services = build_services(args)
    try:
        current = generation_config_from(args, services)
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else []
        columns = []
        for i, name in enumerate(args.presets):
            config = current if name == "current" else services.presets.get(name)
            if i < len(seeds):
                config = config.replace(seed=seeds[i])
            columns.append(CompareColumn(label=name, config=config))
        columns = seeded(columns)
        done = answers(list(compare_turn(services.chat, args.conversation, columns)))
        rows = [
            {
                "label": c.label,
                "seed": c.config.seed,
                "message_id": done[i].message_id,
                "text": done[i].text,
                "tokens": done[i].usage.completion_tokens,
                "tokens_per_s": round(done[i].timings.tokens_per_s, 2),
            }
            for i, c in enumerate(columns)
            if i in done
        ]
        if args.json:
            print_json(rows)
        else:
            for row in rows:
                print(
                    f"== {row['label']} · seed {row['seed']} · {row['tokens_per_s']} tok/s · {row['tokens']} "
                    f"tokens · {row['message_id']}\n{row['text']}\n"
                )
        return 0
    finally:
        services.close()
