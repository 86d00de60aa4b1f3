"""ingest, search, ask, documents, reindex: the Documents feature on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .common import add_generation_flags, build_services, generation_config_from, print_json, printable

ASK_SYSTEM = (
    "Answer the question using the numbered reference passages. Cite the passages you use "
    "like [1]. If the passages do not contain the answer, say so."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from . import watch_cmd

    _register_ingest(sub)
    _register_search(sub)
    watch_cmd.register(sub)

    p = sub.add_parser("ask", help="answer a question from your documents, with sources")
    p.add_argument("question")
    p.add_argument("--collection", action="append", default=None, help="draw on this collection (repeatable)")
    p.add_argument("--json", action="store_true", help="print answer and sources as JSON")
    add_generation_flags(p)
    p.set_defaults(handler=ask)

    p = sub.add_parser("documents", help="list documents, or delete one")
    p.add_argument("--collection", default=None, help="only this collection")
    p.add_argument("--delete", metavar="DOCUMENT_ID", default=None, help="delete this document everywhere")
    p.add_argument("--json", action="store_true")
    # listing only reads SQLite, so it also works beside a running server (read-only)
    p.set_defaults(handler=documents, reads_beside_a_server=True)

    p = sub.add_parser(
        "reindex", help="re-embed chunks missing from the vector index (new embedding model, crash)"
    )
    p.set_defaults(handler=reindex)


def _register_ingest(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from engine.library import DEFAULT_COLLECTION

    p = sub.add_parser("ingest", help="add documents (files or folders) to a collection")
    p.add_argument("paths", nargs="+", type=Path, help="files or folders (walked recursively)")
    p.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection to add to (default: {DEFAULT_COLLECTION})",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=None, help="refuse files larger than this (default 50)"
    )
    p.add_argument(
        "--chunk-tokens", type=int, default=None, help="chunk size in embedding tokens (default 200)"
    )
    p.add_argument(
        "--chunk-overlap", type=int, default=None, help="tokens shared by neighbouring chunks (default 30)"
    )
    p.add_argument(
        "--max-pages", type=int, default=None, help="refuse PDFs with more pages than this (default 2000)"
    )
    p.add_argument(
        "--max-chars", type=int, default=None, help="refuse documents with more text than this (default 50M)"
    )
    p.add_argument(
        "--parse-seconds", type=float, default=None, help="stop reading a file after this long (default 120)"
    )
    p.add_argument("--json", action="store_true", help="print one result per file as JSON")
    p.add_argument(
        "--watch",
        action="store_true",
        help="after adding, put the folders in the watched list (the Documents tab's) and keep every listed "
        "folder in sync (added, changed, renamed and deleted files, images too) until Ctrl-C",
    )
    p.set_defaults(handler=ingest)


def _register_search(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", help="search documents (or images) and print ranked hits")
    p.add_argument("query", nargs="?", default="", help="what to look for")
    p.add_argument("--k", type=int, default=5, help="how many hits (default 5)")
    p.add_argument(
        "--collection", action="append", default=None, help="search only this collection (repeatable)"
    )
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    p.add_argument(
        "--multi-query", action="store_true", help="also search phrasings written by the chat model"
    )
    p.add_argument(
        "--hyde", action="store_true", help="also embed a hypothetical answer written by the chat model"
    )
    p.add_argument("--images", action="store_true", help="search images by this text instead (CLIP)")
    p.add_argument("--image", type=Path, default=None, help="search images similar to this image file")
    p.add_argument("--json", action="store_true", help="print hits as a JSON list")
    p.set_defaults(handler=search)


def _services(args: argparse.Namespace, *, load_model: bool = False):
    from . import settings_from

    settings = settings_from(args)
    changes = {
        "max_upload_bytes": int(args.max_upload_mb * 1024 * 1024)
        if getattr(args, "max_upload_mb", None)
        else None,
        "chunk_tokens": getattr(args, "chunk_tokens", None),
        "chunk_overlap_tokens": getattr(args, "chunk_overlap", None),
        "ingest_max_pages": getattr(args, "max_pages", None),
        "ingest_max_chars": getattr(args, "max_chars", None),
        "ingest_parse_seconds": getattr(args, "parse_seconds", None),
    }
    settings = settings.replace(**{k: v for k, v in changes.items() if v is not None})
    return build_services(args, load_model=load_model, settings=settings)


def ingest(args: argparse.Namespace) -> int:
    import threading

    from engine.rag.routing import add_files

    from .progress_line import ProgressLine
    from .watch_cmd import INTERRUPTED, ctrl_c_sets, stopped_note

    services = _services(args)
    try:
        line = ProgressLine()
        stop = threading.Event()
        try:
            with ctrl_c_sets(stop, "Stopping after the file in progress…"):
                results = add_files(
                    services.documents,
                    services.images,
                    args.paths,
                    collection=args.collection,
                    on_progress=line,
                    cancel=stop,
                )
        finally:
            line.close()
        _print_results(results, as_json=args.json)
        sys.stdout.flush()  # before a watch, which may run for days
        if stop.is_set():
            print(stopped_note(results), file=sys.stderr)
            return INTERRUPTED
        if args.watch:
            from .watch_cmd import watch

            return watch(services, args.paths, collection=args.collection)
        return 1 if any(r.status == "error" for r in results) else 0
    finally:
        services.close()


def _print_results(results, *, as_json: bool) -> None:
    if as_json:
        print_json([dataclasses.asdict(r) for r in results])
        return
    from engine.library import STOPPED

    for r in results:
        what = f"{r.path}: {r.message}" if r.message == STOPPED else r.message or r.path
        print(f"{r.status:>9}  {what}")
    counts = {
        s: sum(r.status == s for r in results) for s in ("added", "replaced", "unchanged", "skipped", "error")
    }
    print(", ".join(f"{n} {s}" for s, n in counts.items()), file=sys.stderr)


def search(args: argparse.Namespace) -> int:
    services = _services(args, load_model=args.multi_query or args.hyde)
    try:
        collection = args.collection[0] if args.collection else None
        if args.images or args.image is not None:
            if args.image is not None:
                hits = services.images.search_image(args.image, k=args.k, collection=collection)
            else:
                hits = services.images.search_text(args.query, k=args.k, collection=collection)
        else:
            from engine.rag import SearchOptions

            options = SearchOptions(multi_query=args.multi_query, hyde=args.hyde)
            hits = services.documents.search(
                args.query, k=args.k, collections=args.collection, mode=args.mode, options=options
            )
        _print_hits(hits, as_json=args.json)
        return 0
    finally:
        services.close()


def _print_hits(hits, *, as_json: bool) -> None:
    if as_json:
        print_json([dataclasses.asdict(h) for h in hits])
        return
    if not hits:
        print("No matches.", file=sys.stderr)
    for rank, h in enumerate(hits, start=1):
        where = _where(h)
        span = f" [{h.start}:{h.end}]" if h.start is not None else ""
        print(f"{rank}. {where}{span}  score {h.score:.4f}")
        print("   " + printable(" ".join(h.text.split())[:300]))


def _where(hit) -> str:
    """The source's file and where in it: page, slide, sheet or heading path."""
    if hit.location:
        return printable(f"{hit.source}, {hit.location}")
    return printable(hit.source) + (f", page {hit.page}" if hit.page is not None else "")


def ask(args: argparse.Namespace) -> int:
    from engine.types import Done, Sources, TextDelta

    services = _services(args, load_model=True)
    try:
        config = generation_config_from(args, services)
        conversation = services.chat.new_conversation(
            title=args.question[:60], system_prompt=f"{services.settings.system_prompt}\n\n{ASK_SYSTEM}"
        )
        if args.collection:
            services.documents.resolve_collections(args.collection)  # unknown names fail here, clearly
            services.conversations.update(conversation.id, collections=args.collection)
        done, sources = None, []
        for event in services.chat.stream_turn(conversation.id, args.question, config):
            if isinstance(event, TextDelta) and not args.json:
                sys.stdout.write(printable(event.text))
                sys.stdout.flush()
            elif isinstance(event, Sources):
                sources = [h for h in event.hits if h.kind == "chunk"]
            elif isinstance(event, Done):
                done = event
        if args.json:
            print_json(
                {
                    "conversation_id": conversation.id,
                    "answer": done.text if done else "",
                    "sources": [dataclasses.asdict(h) for h in sources],
                }
            )
            return 0
        print("\n\nSources:" if sources else "\n\n(No passage in your documents matched this question.)")
        for n, h in enumerate(sources, start=1):
            where = _where(h)
            print(f"[{n}] {where}: {printable(' '.join(h.text.split())[:160])}")
        return 0
    finally:
        services.close()


def documents(args: argparse.Namespace) -> int:
    from engine.errors import DataDirInUseError

    try:
        services = _services(args)
    except DataDirInUseError as busy:
        if args.delete:
            raise
        return _documents_read_only(args, busy)
    try:
        if args.delete:
            services.documents.delete(args.delete)
            print(f"Deleted {args.delete}.", file=sys.stderr)
            return 0
        _print_documents(services.documents.documents(args.collection), as_json=args.json)
        return 0
    finally:
        services.close()


def _print_documents(docs, *, as_json: bool) -> None:
    if as_json:
        print_json([dataclasses.asdict(d) for d in docs])
        return
    for d in docs:
        print(f"{d.id}  {d.collection:<12} {d.n_chunks:>5} chunks  {d.name}")


def _documents_read_only(args: argparse.Namespace, busy: Exception) -> int:
    """The list straight from SQLite, opened read-only: no migrations, no Chroma, no lock."""
    from engine.rag.store import DocumentStore
    from engine.store.db import Database

    from . import settings_from

    database = Database.read_only(settings_from(args).db_path)
    try:
        _print_documents(DocumentStore(database).documents(args.collection), as_json=args.json)
    finally:
        database.close()
    print(f"(read-only: {str(busy).split(':')[0]}, so nothing can be changed now)", file=sys.stderr)
    return 0


def reindex(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        counts = services.documents.repair()
        print(f"Embedded {counts['embedded']} chunk(s); removed {counts['removed']} stale vector(s).")
        return 0
    finally:
        services.close()
