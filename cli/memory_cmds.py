"""memory show | search | set | add | edit | delete | pending | approve | reject | log | auto | reindex."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from .common import build_services, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("memory", help="view and edit long-term memory (core blocks, recall, archival)")
    msub = p.add_subparsers(dest="memory_command", metavar="ACTION", required=True)

    s = msub.add_parser("show", help="core memory blocks with fill levels, and memory counts")
    s.add_argument("--conversation", default=None, help="show the blocks this conversation sees")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=show)

    s = msub.add_parser("search", help="search archival memory (meaning) and past messages (keywords, dates)")
    s.add_argument("query", help="what to look for (may be empty with --from/--to)")
    s.add_argument("--from", dest="start", default=None, help="earliest day, e.g. 2025-01-31")
    s.add_argument("--to", dest="end", default=None, help="latest day, e.g. 2025-02-28")
    s.add_argument("--conversation", default=None, help="only this conversation's messages")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=search)

    s = msub.add_parser("set", help="replace a core block's text (creates the block if it is new)")
    s.add_argument("block", help="block name, e.g. human, persona, or a new one")
    s.add_argument("text", help="the block's new text")
    s.add_argument(
        "--limit", type=int, default=None, help="the block's character limit (default 2000 for new blocks)"
    )
    s.add_argument("--conversation", default=None, help="a block for this conversation only")
    s.set_defaults(handler=set_block)
    _register_archival(msub)
    _register_review(msub)


def _register_archival(msub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = msub.add_parser("add", help="keep a fact in archival memory")
    s.add_argument("fact")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=add)

    s = msub.add_parser(
        "edit", help="replace an archival memory's text (it becomes yours: kept if its chats go)"
    )
    s.add_argument("id")
    s.add_argument("text")
    s.set_defaults(handler=edit)

    s = msub.add_parser("auto", help="automatic memories: show, or switch on/off (kept across restarts)")
    s.add_argument("state", nargs="?", choices=["on", "off"], default=None)
    s.set_defaults(handler=auto)

    s = msub.add_parser(
        "reindex", help="rebuild the memory vector indexes (archival, past messages) from SQLite"
    )
    s.set_defaults(handler=reindex)

    s = msub.add_parser("delete", help="delete an archival memory by id")
    s.add_argument("id")
    s.set_defaults(handler=delete)


def _register_review(msub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = msub.add_parser("pending", help="writes the model suggested that wait for your approval")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=pending)
    for name, verb in (("approve", "apply"), ("reject", "discard")):
        s = msub.add_parser(name, help=f"{verb} a pending write")
        s.add_argument("id")
        s.set_defaults(handler=resolve, resolution=name)

    s = msub.add_parser("log", help="where each memory write came from (newest first)")
    s.add_argument("--limit", type=int, default=30)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=log)


def show(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        data = memory.overview(args.conversation)
        if args.json:
            print_json(data)
            return 0
        for b in data["blocks"]:
            print(f"{b['label']} ({b['fill']}, {b['scope']})")
            for line in (b["value"] or "(empty)").splitlines():
                print(f"  {line}")
        print(
            f"archival memories: {data['archival_count']} · messages in recall: {data['recall_count']} · "
            f"summaries: {data['summaries']} · pending suggestions: {len(data['pending'])}"
        )
    return 0


def search(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        hits = memory.search(
            args.query, k=args.limit, start=args.start, end=args.end, conversation_id=args.conversation
        )
        if args.json:
            print_json([dataclasses.asdict(h) for h in hits])
            return 0
        if not hits:
            print("Nothing found.")
        for h in hits:
            print(f"[{h.kind}] {h.id}  {h.source}\n  {' '.join(h.text.split())}")
    return 0


def set_block(args: argparse.Namespace) -> int:
    from engine.errors import NotFoundError
    from engine.memory.provenance import CLI

    with _memory(args) as memory:
        try:
            block = memory.core.get(args.block, args.conversation)
        except NotFoundError:
            block = None
        if block is None or (args.conversation and not block.conversation_id):
            limit = args.limit or 2000
            block = memory.core.create(
                args.block, limit=limit, value=args.text, conversation_id=args.conversation or "", origin=CLI
            )
        else:
            if args.limit and args.limit > block.limit:  # raise the limit before writing longer text
                memory.core.set_limit(args.block, args.limit, conversation_id=args.conversation, origin=CLI)
            block = memory.core.set(args.block, args.text, conversation_id=args.conversation, origin=CLI)
            if args.limit and args.limit < block.limit:
                block = memory.core.set_limit(
                    args.block, args.limit, conversation_id=args.conversation, origin=CLI
                )
        print(f"{block.label}: {block.fill}")
    return 0


def add(args: argparse.Namespace) -> int:
    from engine.memory.provenance import CLI

    with _memory(args) as memory:
        entry = memory.archival.insert(args.fact, origin=CLI)
        if args.json:
            print_json(dataclasses.asdict(entry))
        else:
            print(f"saved {entry.id}")
    return 0


def edit(args: argparse.Namespace) -> int:
    from engine.memory.provenance import CLI

    with _memory(args) as memory:
        entry = memory.archival.update(args.id, args.text, origin=CLI)
        print(f"updated {entry.id}")
    return 0


def auto(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        if args.state is not None:
            memory.set_auto(args.state == "on")
        print(f"automatic memories: {'on' if memory.auto_enabled else 'off'}")
    return 0


def reindex(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        counts = memory.reindex()
        print(f"re-embedded {counts['archival']} archival memories and {counts['messages']} messages")
    return 0


def delete(args: argparse.Namespace) -> int:
    from engine.memory.provenance import CLI

    with _memory(args) as memory:
        memory.archival.delete(args.id, origin=CLI)
        print(f"deleted {args.id}")
    return 0


def pending(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        rows = memory.log.pending()
        if args.json:
            print_json([dataclasses.asdict(r) for r in rows])
            return 0
        if not rows:
            print("No suggestions wait for approval.")
        for r in rows:
            print(f"{r.id}  {r.action} {r.args}  ({r.note})")
    return 0


def resolve(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        if args.resolution == "approve":
            print(memory.approve(args.id))
        else:
            memory.reject(args.id)
            print(f"rejected {args.id}")
    return 0


def log(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        rows = memory.log.list(limit=args.limit)
        if args.json:
            print_json([dataclasses.asdict(r) for r in rows])
            return 0
        for r in rows:
            where = f" conversation {r.conversation_id}" if r.conversation_id else ""
            print(
                f"{r.created_at[:19]}  {r.status:<8} {r.action:<16} {r.target:<24} by {r.origin}{where}  {r.note}"
            )
    return 0


@contextmanager
def _memory(args: argparse.Namespace) -> Iterator:
    """The memory service without the chat model (memory commands never generate), closed on exit."""
    services = build_services(args, load_model=False)
    try:
        yield services.memory
    finally:
        services.close()
