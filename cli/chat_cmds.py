"""chat, conversations (export and import: cli/branch_cmds.py)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .common import add_generation_flags, build_services, generation_config_from, print_json, printable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="stream an answer to stdout")
    p.add_argument("message", help="what to say")
    p.add_argument("--conversation", default=None, help="continue this conversation id")
    p.add_argument("--system", default=None, help="system prompt for a new conversation")
    p.add_argument(
        "--json", action="store_true", help="print conversation id, answer, usage and timings as JSON"
    )
    add_generation_flags(p)
    p.set_defaults(handler=chat)

    p = sub.add_parser("conversations", help="list conversations")
    p.add_argument("--search", default="", help="filter by title or message text")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=conversations)


def chat(args: argparse.Namespace) -> int:
    from engine.errors import GenerationError
    from engine.types import Done, Hit, Sources, TextDelta

    services = build_services(args)
    try:
        config = generation_config_from(args, services)
        conversation_id = args.conversation
        if conversation_id is None and args.system is not None:
            conversation_id = services.chat.new_conversation(system_prompt=args.system).id
        done: Done | None = None
        sources: list[Hit] = []
        for event in services.chat.stream_turn(conversation_id, args.message, config):
            if isinstance(event, TextDelta) and not args.json:
                sys.stdout.write(printable(event.text))
                sys.stdout.flush()
            elif isinstance(event, Sources):
                sources = event.hits
            elif isinstance(event, Done):
                done = event
        if done is None:  # the engine always ends a turn with Done; say so rather than crash
            raise GenerationError("The answer ended without its final status.")
        if args.json:
            print_json(
                {
                    "conversation_id": done.conversation_id,
                    "message_id": done.message_id,
                    "message": done.text,
                    "finish_reason": done.finish_reason,
                    "model": done.model,
                    "usage": dataclasses.asdict(done.usage),
                    "timings": dataclasses.asdict(done.timings),
                    "sources": [dataclasses.asdict(h) for h in sources],
                    "notes": list(done.notes),
                }
            )
        else:
            sys.stdout.write("\n")
            t = done.timings
            print(
                f"[{done.conversation_id}] {t.ttft_s:.2f}s to first token, {t.tokens_per_s:.1f} tok/s, "
                f"{done.usage.prompt_tokens + done.usage.completion_tokens}/{done.usage.n_ctx} tokens"
                + "".join(f"; {note}" for note in done.notes),
                file=sys.stderr,
            )
        return 0
    finally:
        services.close()


def conversations(args: argparse.Namespace) -> int:
    services = build_services(args, load_model=False)
    try:
        rows = services.conversations.list(args.search)
        if args.json:
            print_json([dataclasses.asdict(c) for c in rows])
        else:
            for c in rows:
                print(f"{c.id}  {c.updated_at[:19]}  {c.title}")
        return 0
    finally:
        services.close()
