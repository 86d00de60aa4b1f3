"""The command line: ``python run.py [serve|chat|conversations|export|...]``.

Each subsystem's commands live in their own module with ``register(subparsers)``;
``main`` composes them. Only this package parses arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import branch_cmds, chat_cmds, docs_cmds, memory_cmds, serve_cmd
from .common import check_data_dir

#: modules that add subcommands; each has register(subparsers) -> None
COMMAND_MODULES = [serve_cmd, chat_cmds, branch_cmds, docs_cmds, memory_cmds]

DEFAULT_DATA_DIR = Path.home() / ".hearth"


def _env_int(name: str) -> str | None:
    """The variable's text, or None when unset: argparse converts it with the flag's ``type``
    when it parses, so a bad value is a usage error naming the flag (and ``--help`` still works)."""
    return os.environ.get(name) or None


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_flag(name: str, default: bool) -> bool:
    """One reading of every boolean HEARTH_* variable: 1/true/yes/on or 0/false/no/off."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE_WORDS or value in FALSE_WORDS:
        return value in TRUE_WORDS
    sys.stderr.write(
        f"python run.py: error: {name}={value!r}: use one of {', '.join(TRUE_WORDS + FALSE_WORDS)}\n"
    )
    raise SystemExit(2)


def global_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python run.py",
        # no abbreviations: a command's own flag (search --k) must never be read as a prefix
        # of a global one (--kv-cache-ram-mb), whatever flags are added later
        allow_abbrev=False,
        description="Hearth: a private ChatGPT on your own machine.",
    )
    g = parser.add_argument_group("global options (each has an environment variable fallback)")
    g.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("HEARTH_DATA_DIR") or DEFAULT_DATA_DIR),
        help="where conversations, documents and indexes live (HEARTH_DATA_DIR; default ~/.hearth)",
    )
    g.add_argument(
        "--model",
        default=os.environ.get("HEARTH_MODEL") or None,
        help="GGUF path or hf:OWNER/REPO/FILE.gguf (HEARTH_MODEL; default: bundled SmolLM2-135M)",
    )
    g.add_argument(
        "--n-ctx", type=int, default=_env_int("HEARTH_N_CTX") or 4096, help="context window (HEARTH_N_CTX)"
    )
    g.add_argument(
        "--n-gpu-layers",
        type=int,
        default=_env_int("HEARTH_N_GPU_LAYERS"),
        help="layers on the GPU, -1 = all (HEARTH_N_GPU_LAYERS; default: all when supported)",
    )
    g.add_argument(
        "--n-threads",
        type=int,
        default=_env_int("HEARTH_N_THREADS"),
        help="CPU threads for generation (HEARTH_N_THREADS; default: one per available physical core)",
    )
    g.add_argument(
        "--chat-template",
        default=os.environ.get("HEARTH_CHAT_TEMPLATE") or None,
        help="file holding a Jinja chat template overriding the model's (HEARTH_CHAT_TEMPLATE)",
    )
    g.add_argument(
        "--mmproj",
        default=os.environ.get("HEARTH_MMPROJ") or None,
        help="projector GGUF of a vision model, so attached images reach it (HEARTH_MMPROJ)",
    )
    g.add_argument(
        "--embed-model",
        default=os.environ.get("HEARTH_EMBED_MODEL") or None,
        help="sentence-transformers model name or path (HEARTH_EMBED_MODEL); for many languages "
        "intfloat/multilingual-e5-small",
    )
    g.add_argument(
        "--embed-query-prefix",
        default=os.environ.get("HEARTH_EMBED_QUERY_PREFIX"),
        help="text put before each search question before embedding (default: from the model name, "
        "e.g. 'query: ' for e5)",
    )
    g.add_argument(
        "--embed-passage-prefix",
        default=os.environ.get("HEARTH_EMBED_PASSAGE_PREFIX"),
        help="text put before each passage before embedding (default: from the model name)",
    )
    g.add_argument(
        "--rerank-model",
        default=os.environ.get("HEARTH_RERANK_MODEL") or None,
        help="sentence-transformers CrossEncoder that reorders the best search results "
        "(HEARTH_RERANK_MODEL; default: none)",
    )
    g.add_argument(
        "--clip-model",
        default=os.environ.get("HEARTH_CLIP_MODEL") or "ViT-B-32",
        help="open_clip architecture or local-dir:PATH (HEARTH_CLIP_MODEL)",
    )
    g.add_argument(
        "--clip-pretrained",
        default=os.environ.get("HEARTH_CLIP_PRETRAINED") or "laion2b_s34b_b79k",
        help="open_clip pretrained tag or checkpoint file (HEARTH_CLIP_PRETRAINED)",
    )
    g.add_argument(
        "--clip-device",
        default=os.environ.get("HEARTH_CLIP_DEVICE") or None,
        help="torch device for CLIP: cpu, cuda, cuda:1 (HEARTH_CLIP_DEVICE; default: CUDA when available)",
    )
    g.add_argument(
        "--clip-batch-size",
        type=int,
        default=_env_int("HEARTH_CLIP_BATCH_SIZE") or 16,
        help="images per CLIP batch at ingest (HEARTH_CLIP_BATCH_SIZE)",
    )
    g.add_argument(
        "--no-memory",
        action="store_true",
        default=not env_flag("HEARTH_MEMORY", True),
        help="answer without memory: no core blocks, summaries or retrieved memories (HEARTH_MEMORY=0)",
    )
    g.add_argument(
        "--memory-agent",
        action="store_true",
        default=env_flag("HEARTH_MEMORY_AGENT", False),
        help="let the model call memory tools before answering (HEARTH_MEMORY_AGENT=1)",
    )
    _add_remote_options(parser)
    g.add_argument(
        "--no-auto-memory",
        action="store_true",
        default=not env_flag("HEARTH_AUTO_MEMORY", True),
        help="never keep what you say about yourself as memories on its own (HEARTH_AUTO_MEMORY=0)",
    )
    _speed_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _add_remote_options(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    g = parser.add_argument_group("scaling out: a remote model server and a Chroma server")
    g.add_argument(
        "--backend-url",
        default=env("HEARTH_BACKEND_URL") or None,
        help="OpenAI-compatible server that runs the model instead of a local GGUF: vLLM, "
        "llama.cpp's server, Ollama ... e.g. http://gpu-box:8000 (HEARTH_BACKEND_URL)",
    )
    g.add_argument(
        "--backend-key",
        default=env("HEARTH_BACKEND_KEY") or None,
        help="its API key (HEARTH_BACKEND_KEY; prefer --backend-key-file: flags show in ps)",
    )
    g.add_argument(
        "--backend-key-file",
        type=Path,
        default=env("HEARTH_BACKEND_KEY_FILE") or None,
        help="file holding the API key (HEARTH_BACKEND_KEY_FILE)",
    )
    g.add_argument(
        "--backend-model",
        default=env("HEARTH_BACKEND_MODEL") or None,
        help="which of the server's models (HEARTH_BACKEND_MODEL; default: the first it lists)",
    )
    g.add_argument(
        "--backend-n-ctx",
        type=int,
        default=_env_int("HEARTH_BACKEND_N_CTX"),
        help="its context length when the server does not say, or less to reserve room (HEARTH_BACKEND_N_CTX)",
    )
    g.add_argument(
        "--backend-timeout",
        type=float,
        default=env("HEARTH_BACKEND_TIMEOUT") or 120.0,
        help="seconds the server may stay silent mid-answer (HEARTH_BACKEND_TIMEOUT; default 120)",
    )
    g.add_argument(
        "--chroma-url",
        default=env("HEARTH_CHROMA_URL") or None,
        help="Chroma server holding the vectors, e.g. http://127.0.0.1:8001; beyond loopback "
        "it needs https or a token (HEARTH_CHROMA_URL)",
    )
    g.add_argument(
        "--chroma-token",
        default=env("HEARTH_CHROMA_TOKEN") or None,
        help="its bearer token (HEARTH_CHROMA_TOKEN; prefer --chroma-token-file)",
    )
    g.add_argument("--chroma-token-file", type=Path, default=env("HEARTH_CHROMA_TOKEN_FILE") or None,
                   help="file holding the Chroma token (HEARTH_CHROMA_TOKEN_FILE)")  # fmt: skip


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
    g.add_argument(
        "--n-threads-batch",
        type=int,
        default=_env_int("HEARTH_N_THREADS_BATCH"),
        help="CPU threads for prompt batches (HEARTH_N_THREADS_BATCH; default: every available CPU)",
    )
    g.add_argument(
        "--no-kv-snapshots",
        action="store_true",
        default=not env_flag("HEARTH_KV_SNAPSHOTS", True),
        help="do not keep each conversation's KV cache in RAM and on disk (HEARTH_KV_SNAPSHOTS=0)",
    )
    g.add_argument(
        "--kv-cache-ram-mb",
        type=int,
        default=_env_int("HEARTH_KV_CACHE_RAM_MB"),
        help="RAM for KV snapshots in MB (HEARTH_KV_CACHE_RAM_MB; default: 5%% of RAM, 64-2048)",
    )
    g.add_argument(
        "--kv-cache-disk-mb",
        type=int,
        default=_env_int("HEARTH_KV_CACHE_DISK_MB"),
        help="disk for KV snapshots in MB, in DATA_DIR/kv (HEARTH_KV_CACHE_DISK_MB; default: 5%% of free disk, 256-4096)",
    )
    g.add_argument(
        "--prompt-lookup",
        action="store_true",
        default=env_flag("HEARTH_PROMPT_LOOKUP", False),
        help="prompt-lookup speculative decoding of sampled answers (HEARTH_PROMPT_LOOKUP=1)",
    )


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
        kv_snapshots=not args.no_kv_snapshots,
        kv_cache_ram_mb=args.kv_cache_ram_mb,
        kv_cache_disk_mb=args.kv_cache_disk_mb,
        prompt_lookup=args.prompt_lookup,
        chat_template=template,
        mmproj=args.mmproj,
        embed_model=args.embed_model,
        embed_query_prefix=args.embed_query_prefix,
        embed_passage_prefix=args.embed_passage_prefix,
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = global_parser()
    args = parser.parse_args(_with_default_command(parser, list(sys.argv[1:] if argv is None else argv)))
    from engine.errors import EngineError

    try:
        check_data_dir(args)
        return int(args.handler(args) or 0)
    except EngineError as e:
        print(f"{e.title}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
