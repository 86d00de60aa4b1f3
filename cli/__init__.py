"""The command line: ``python run.py [serve|chat|conversations|export|...]``.

Each subsystem's commands live in their own module with ``register(subparsers)``;
``main`` composes them. Only this package parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from . import branch_cmds, chat_cmds, docs_cmds, memory_cmds, preset_cmds, serve_cmd
from .common import check_data_dir
from .options import env_option, parse_auto_bool, setting_option

LOG_LEVELS = ("debug", "info", "warning", "error")


def log_level(text: str) -> str:
    word = text.strip().lower()
    if word not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return word


#: modules that add subcommands; each has register(subparsers) -> None
COMMAND_MODULES = [serve_cmd, chat_cmds, branch_cmds, docs_cmds, memory_cmds, preset_cmds]

DEFAULT_DATA_DIR = Path.home() / ".hearth"


def global_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python run.py",
        # no abbreviations: a command's own flag (search --k) must never be read as a prefix
        # of a global one (--kv-cache-ram-mb), whatever flags are added later
        allow_abbrev=False,
        description="Hearth: a private ChatGPT on your own machine.",
    )
    _model_options(parser)
    _retrieval_options(parser)
    _remote_options(parser)
    _speed_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    _log_level_after_commands(parser)
    return parser


def _log_level_after_commands(parser: argparse.ArgumentParser) -> None:
    """--log-level after any command too (python run.py chat "hi" --log-level debug); unset
    unless given there, so the global flag and HEARTH_LOG_LEVEL still count."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.add_argument(
                    "--log-level", type=log_level, default=argparse.SUPPRESS, help="as above"
                )
                _log_level_after_commands(command)


def _model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("global options (each has an environment variable fallback)")
    add = partial(setting_option, g)
    add(
        "data_dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where conversations, documents and indexes live (default ~/.hearth)",
    )
    env_option(
        g,
        "--log-level",
        type=log_level,
        default="warning",
        choices=LOG_LEVELS,
        help="least important messages logged, to stderr and DATA_DIR/hearth.log (default warning)",
    )
    add("model", help="GGUF path or hf:OWNER/REPO/FILE.gguf (default: bundled SmolLM2-135M)")
    add("n_ctx", help="context window")
    add("n_gpu_layers", help="layers on the GPU, -1 = all (default: all when supported)")
    add("n_threads", help="CPU threads for generation (default: one per available physical core)")
    add("chat_template", help="file holding a Jinja chat template overriding the model's")
    add("mmproj", help="projector GGUF of a vision model, so attached images reach it")
    add("memory", help="answer without memory: no core blocks, summaries or retrieved memories")
    add("memory_agent", help="let the model call memory tools before answering")
    add("auto_memory", help="never keep what you say about yourself as memories on its own")


def _retrieval_options(parser: argparse.ArgumentParser) -> None:
    from engine.embeddings import PRECISIONS

    g = parser.add_argument_group("documents and images: embedders, reranker, CLIP")
    add = partial(setting_option, g)
    add(
        "embed_model",
        help="sentence-transformers model name or path; for many languages intfloat/multilingual-e5-small",
    )
    add(
        "embed_query_prefix",
        keep_empty=True,
        help="text put before each search question before embedding (default: from the model name, e.g. 'query: ' for e5)",
    )
    add(
        "embed_passage_prefix",
        keep_empty=True,
        help="text put before each passage before embedding (default: from the model name)",
    )
    add("embed_onnx", help="embed with torch only, never through an ONNX export of the model")
    add(
        "embed_precision",
        choices=PRECISIONS,
        help="ONNX export to embed with: int8 (default, about 2x faster, recall measured equal) "
        "or fp32 (torch's vectors)",
    )
    add(
        "rerank_model",
        help="sentence-transformers CrossEncoder that reorders the best search results (default: none)",
    )
    add("clip_model", help="open_clip architecture or local-dir:PATH")
    add("clip_pretrained", help="open_clip pretrained tag or checkpoint file")
    add("clip_device", help="torch device for CLIP: cpu, cuda, cuda:1 (default: CUDA when available)")
    add("clip_batch_size", help="images per CLIP batch at ingest")


def _remote_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("scaling out: a remote model server and a Chroma server")
    add = partial(setting_option, g)
    add(
        "backend_url",
        help="OpenAI-compatible server that runs the model instead of a local GGUF: vLLM, "
        "llama.cpp's server, Ollama ... e.g. http://gpu-box:8000",
    )
    add("backend_key", help="its API key (prefer --backend-key-file: flags show in ps)")
    env_option(g, "--backend-key-file", type=Path, help="file holding the API key")
    add("backend_model", help="which of the server's models (default: the first it lists)")
    add("backend_n_ctx", help="its context length when the server does not say, or less to reserve room")
    add("backend_timeout", help="seconds the server may stay silent mid-answer (default 120)")
    add(
        "chroma_url",
        help="Chroma server holding the vectors, e.g. http://127.0.0.1:8001; beyond loopback it needs https or a token",
    )
    add("chroma_token", help="its bearer token (prefer --chroma-token-file)")
    env_option(g, "--chroma-token-file", type=Path, help="file holding the Chroma token")


def _secret(value: str | None, path: Path | None, name: str) -> str | None:
    """A secret from its flag or, so that it stays out of ``ps``, from a file."""
    if path is None:
        return value
    from engine.errors import ConfigError

    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as e:
        raise ConfigError(f"Could not read the {name} file {path}: {e}", field=name) from e
    if not text:
        raise ConfigError(f"The {name} file {path} is empty.", field=name)
    return text


def _speed_options(parser: argparse.ArgumentParser) -> None:
    """Threads, KV snapshots and speculative decoding: the engine's speed knobs, in one group."""
    g = parser.add_argument_group("speed (each has an environment variable fallback)")
    add = partial(setting_option, g)
    add("n_threads_batch", help="CPU threads for prompt batches (default: every available CPU)")
    add("n_batch", help="most prompt tokens per llama.cpp call (default: 63 with flash attention, else 512)")
    add(
        "flash_attn",
        help="flash attention: on, off or auto (default: on a GPU, on a CPU whichever decodes faster here)",
        flag="--flash-attn",
        switch=False,
        default=None,
        type=parse_auto_bool,
        type_name="on, off or auto",
        metavar="{on,off,auto}",
    )
    g.add_argument("--no-flash-attn", action="store_true", help="the same as --flash-attn off")
    add("kv_snapshots", help="do not keep each conversation's KV cache in RAM and on disk")
    add("kv_cache_ram_mb", help="RAM for KV snapshots in MB (default: 5%% of RAM, 64-2048)")
    add(
        "kv_cache_disk_mb",
        help="disk for KV snapshots in MB, in DATA_DIR/kv (default: 5%% of free disk, 256-4096)",
    )
    add("prompt_lookup", help="prompt-lookup speculative decoding of sampled answers")
    add("draft_model", help="small GGUF of the same family that drafts tokens for sampled answers")


def settings_from(args: argparse.Namespace):
    from engine.config import Settings

    template = None
    if args.chat_template:
        template = Path(args.chat_template).read_text(encoding="utf-8")
    return Settings(
        data_dir=args.data_dir.expanduser(),
        model=args.model,
        n_ctx=args.n_ctx,
        n_gpu_layers=args.n_gpu_layers,
        n_threads=args.n_threads,
        n_threads_batch=args.n_threads_batch,
        n_batch=args.n_batch,
        flash_attn=False if args.no_flash_attn else args.flash_attn,
        kv_snapshots=not args.no_kv_snapshots,
        kv_cache_ram_mb=args.kv_cache_ram_mb,
        kv_cache_disk_mb=args.kv_cache_disk_mb,
        prompt_lookup=args.prompt_lookup,
        draft_model=args.draft_model,
        chat_template=template,
        mmproj=args.mmproj,
        embed_model=args.embed_model,
        embed_query_prefix=args.embed_query_prefix,
        embed_passage_prefix=args.embed_passage_prefix,
        embed_onnx=not args.no_embed_onnx,
        embed_precision=args.embed_precision,
        rerank_model=args.rerank_model,
        clip_model=args.clip_model,
        clip_pretrained=args.clip_pretrained,
        clip_device=args.clip_device,
        clip_batch_size=args.clip_batch_size,
        memory=not args.no_memory,
        memory_agent=args.memory_agent,
        backend_url=args.backend_url,
        backend_key=_secret(args.backend_key, args.backend_key_file, "backend key"),
        backend_model=args.backend_model,
        backend_n_ctx=args.backend_n_ctx,
        backend_timeout=args.backend_timeout,
        chroma_url=args.chroma_url,
        chroma_token=_secret(args.chroma_token, args.chroma_token_file, "chroma token"),
        auto_memory=not args.no_auto_memory,
    )


def _with_default_command(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """No command means serve: ``python run.py --port 8000`` is ``python run.py serve --port 8000``."""
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if any(token in commands or token in ("-h", "--help") for token in argv):
        return argv
    global_options = {option for action in parser._actions for option in action.option_strings}
    for i, token in enumerate(argv):
        if token.startswith("-") and token.split("=", 1)[0] not in global_options:
            return [*argv[:i], "serve", *argv[i:]]  # the first option only serve knows
    return [*argv, "serve"]


def _start_logging(args: argparse.Namespace) -> None:
    """stderr and DATA_DIR/hearth.log; a command reading beside a running server leaves the
    file to the server (two processes rotating one file would lose lines)."""
    from engine.logs import log_to

    beside_a_server = bool(getattr(args, "reads_beside_a_server", False))
    log_to(None if beside_a_server else args.data_dir.expanduser(), args.log_level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = global_parser()
    args = parser.parse_args(_with_default_command(parser, list(sys.argv[1:] if argv is None else argv)))
    from engine.errors import EngineError

    try:
        check_data_dir(args)
        _start_logging(args)
        return int(args.handler(args) or 0)
    except EngineError as e:
        print(f"{e.title}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        from engine.logs import stop_logging

        stop_logging()
