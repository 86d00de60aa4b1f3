"""The in-process backend over llama-cpp-python: the only module that imports llama_cpp.

Streaming is our own loop over ``Llama.generate`` rather than
``create_chat_completion``: that one re-detokenizes the whole completion on every
token (cost grows with the answer); here each token costs O(1) text work. Prompts
are rendered with the GGUF's own chat template, and the KV cache of an unchanged
prompt prefix is reused in a way that keeps answers deterministic (see ``reusable_prefix``).
"""

from __future__ import annotations

import base64
import codecs
import ctypes
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import GenerationConfig, Settings
from ..errors import ConfigError, GenerationError, ModelError
from ..types import Chunk, Message, TokenLogprob, Usage
from .base import ModelInfo
from .control_tokens import defuse
from .gguf_files import bundled_model_path, check_gguf_file, resolve_model  # noqa: F401 - bundled_model_path: re-exported
from .kv_hook import ConversationKv
from .kv_snapshots import KvSnapshotStore, common_prefix, default_budgets, fingerprint, template_hash
from .limits import available_memory, call_with_deadline, fit_context, kv_bytes_per_token
from .speculative import PromptLookup, drafted
from .streaming import StopScanner
from .threads import plan_threads

if TYPE_CHECKING:
    from llama_cpp import Llama

#: used when a GGUF carries no chat template and none is configured
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# llama.cpp's LLAMA_FTYPE values, for the model panel
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    29: "IQ4_XS",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
}


class LlamaCppBackend:
    """One loaded model; one generation at a time (a lock queues the others)."""

    supports_completion = True

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
        n_ctx, self.note = self._fit_context(path, settings, on_gpu=gpu_ok and n_gpu_layers != 0)
        kwargs: dict[str, Any] = dict(
            model_path=str(path),
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_batch=min(settings.n_batch, n_ctx),
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
            self._loaded: Llama | None = llama_cpp.Llama(**kwargs)  # None once closed
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(
                f"llama.cpp could not load {path.name}: {e}. The file may be truncated, "
                "or made for a newer llama.cpp; try re-downloading it."
            ) from e
        self._lock = threading.Lock()
        #: cache positions evaluated inside full n_batch chunks from 0: the only reusable ones
        self._clean = 0
        self._pieces: dict[int, bytes] = {}
        self._formatter, template_source = self._make_formatter(settings.chat_template)
        self.info = self._describe(path, template_source, gpu_ok, n_gpu_layers, threads)
        self._kv = self._conversation_kv(settings, path, kwargs) if settings.kv_snapshots else None
        self._prompt_lookup = settings.prompt_lookup

    # loading helpers

    def _fit_context(self, path: Path, settings: Settings, *, on_gpu: bool) -> tuple[int, str]:
        """n_ctx within what the model was trained on and what memory holds (from the GGUF's
        hyperparameters, read without loading the weights), and why when less than asked."""
        lc = self._llama_cpp
        params = lc.llama_model_default_params()
        params.vocab_only = True
        try:
            probe = lc._internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelError(
                f"llama.cpp could not load {path.name}: {e}. The file may be truncated, "
                "or made for a newer llama.cpp; try re-downloading it."
            ) from e
        try:  # vocab_only loads no hyperparameters: read them from the metadata
            meta = probe.metadata()
        finally:
            probe.close()
        arch = meta.get("general.architecture", "")

        def number(key: str) -> int:
            return _int(meta.get(f"{arch}.{key}"))

        per_token = kv_bytes_per_token(
            n_layer=number("block_count"),
            n_head=number("attention.head_count"),
            n_head_kv=number("attention.head_count_kv") or number("attention.head_count"),
            n_embd=number("embedding_length"),
            key_length=number("attention.key_length"),
            value_length=number("attention.value_length"),
            type_k=settings.type_k,
            type_v=settings.type_v,
        )
        n_ctx_train = number("context_length")
        # on a GPU the cache lives in its memory, which llama.cpp checks itself when it allocates
        available = None if on_gpu else available_memory()
        return fit_context(
            settings.n_ctx,
            n_ctx_train=n_ctx_train,
            per_token=per_token,
            available=available,
            model_bytes=path.stat().st_size,
        )

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
            "model": str(path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "n_ctx": self._llm.n_ctx(),
            "n_batch": self._llm.n_batch,
            "type_k": settings.type_k,
            "type_v": settings.type_v,
            "flash_attn": settings.flash_attn,
            "n_gpu_layers": kwargs["n_gpu_layers"],
            "template": template_hash(
                "\0".join(getattr(self._formatter, k, "") for k in ("template", "bos_token", "eos_token"))
            ),
            "llama_cpp": getattr(self._llama_cpp, "__version__", ""),
        }
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
            note=self.note,
            n_threads=threads.generation,
            n_threads_batch=threads.batch,
            threads_note=threads.describe(),
        )

    # Backend protocol

    @property
    def _llm(self) -> Llama:
        return self._live()

    def _live(self) -> Llama:
        """The llama.cpp model, or a typed error once this backend was closed (model swapped)."""
        llm = self._loaded
        if llm is None:
            raise ModelError("That model was unloaded (another one was loaded): send the message again.")
        return llm

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self._live().tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    def render(self, messages: Sequence[Message]) -> list[int]:
        """The templated prompt's tokens; message contents can never become control tokens.

        The template's own text is tokenized with special tokens parsed (that is how
        ``<|im_start|>`` becomes a role marker); a message that spells a control token
        (a document, a memory, a stored answer) gets that spelling broken first, so it
        stays plain text whatever the template. Other contents are left byte for byte.
        """
        llm = self._live()
        payload = [{"role": m.role, "content": defuse(llm, self._llama_cpp, m.content)} for m in messages]
        try:  # a template is untrusted code: nested loops could render for hours
            result = call_with_deadline(lambda: self._formatter(messages=payload))
        except GenerationError:
            raise
        except Exception as e:  # a template may raise_exception() on e.g. role order
            raise GenerationError(f"The model's chat template rejected the conversation: {e}") from e
        add_bos = not result.added_special
        return llm.tokenize(result.prompt.encode("utf-8", "replace"), add_bos=add_bos, special=True)

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
        logprobs: int | None = None,
        cache_key: str | None = None,
    ) -> Iterator[Chunk]:
        if images:
            yield from self._stream_with_images(messages, config, images, cancel)
            return
        prompt = self.render(messages)
        advice = " Start a new chat or load the model with a larger context."
        yield from self._run(prompt, config, cancel, grammar, logprobs, cache_key, advice)

    def stream_completion(
        self,
        prompt: str,
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        logprobs: int | None = None,
    ) -> Iterator[Chunk]:
        """Continue raw text: no chat template; special-token text in ``prompt`` is parsed as
        such (the caller writes the whole prompt, as with llama.cpp's /completion)."""
        tokens = self._llm.tokenize(prompt.encode("utf-8", "replace"), add_bos=True, special=True)
        if not tokens:
            raise ConfigError("The prompt is empty.", field="prompt")
        yield from self._run(tokens, config, cancel, grammar, logprobs, None, "")

    def _run(self, prompt, config, cancel, grammar, logprobs, cache_key, advice: str) -> Iterator[Chunk]:
        """One generation over prompt tokens: room check, queue on the lock, KV snapshot hooks."""
        n_ctx = self.info.n_ctx
        room = n_ctx - len(prompt)
        if room <= 0:
            raise GenerationError(
                f"The prompt needs {len(prompt)} tokens but the context holds {n_ctx}.{advice}"
            )
        with self._lock:
            self._live()  # closed while this turn waited for the lock
            if cancel is not None and cancel.is_set():  # cancelled while queued: evaluate nothing
                yield Chunk(text="", finish_reason="cancelled", usage=Usage(prompt_tokens=len(prompt)))
                return
            if self._kv is not None:  # this conversation's snapshot, when it reuses more
                self._clean = self._kv.before_turn(self._llm, cache_key, prompt, clean=self._clean)
            yield from self._generate(prompt, config, min(config.max_tokens, room), cancel, grammar, logprobs)
            if self._kv is not None:
                self._kv.after_turn(self._llm, cache_key, clean=self._clean)

    def _generate(self, prompt, config, max_new, cancel, grammar, logprobs=None) -> Iterator[Chunk]:
        llm, lc = self._llm, self._llama_cpp
        cached = self._start_at(prompt)
        llm.set_seed(config.seed if config.seed >= 0 else random.randrange(2**31))
        # reset=False: llama-cpp-python's own prefix matching would reuse any cached token,
        # including generated ones; _start_at already chose what may be reused
        tokens = llm.generate(
            prompt[cached:],
            reset=False,
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
        if not logprobs:  # drafted tokens are scored in batches: no per-token logits to read
            tokens = self._with_drafts(tokens, prompt, max_new, config)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopScanner(config.stop)
        vocab = llm._model.vocab
        finish, produced = "length", 0
        scored: list[TokenLogprob] = []  # stays empty unless logprobs were asked for
        try:
            for token in tokens:
                if lc.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                if logprobs is not None:
                    scored.append(self._token_logprob(token, logprobs))
                text = stops.feed(decoder.decode(self._piece(token)))
                if text:
                    yield Chunk(text=text, logprobs=_drain(scored))
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
            self._clean = self._aligned(min(len(prompt), llm.n_tokens))
        tail = stops.flush() + decoder.decode(b"", final=True)
        usage = Usage(
            prompt_tokens=len(prompt), completion_tokens=produced, cached_tokens=cached, n_ctx=self.info.n_ctx
        )
        yield Chunk(text=tail, finish_reason=finish, usage=usage, logprobs=_drain(scored))

    def _token_logprob(self, token: int, top_n: int) -> TokenLogprob:
        """The model's log-probability of ``token`` and its ``top_n`` best alternatives.

        Read from the logits that produced ``token``: ``generate`` is suspended at its yield,
        so the context still holds them (no logits_all needed). These are the model's raw
        probabilities, before temperature and the other samplers, as OpenAI reports them.
        """
        import numpy as np

        n_vocab = self._llm.n_vocab()
        logits = np.ctypeslib.as_array(self._llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
        logits = logits.astype(np.float64)
        peak = logits.max()
        logprobs = logits - (peak + np.log(np.exp(logits - peak).sum()))
        top: tuple[TokenLogprob, ...] = ()
        if top_n > 0:
            best = np.argpartition(-logprobs, min(top_n, n_vocab - 1))[:top_n]
            best = best[np.argsort(-logprobs[best], kind="stable")]
            top = tuple(self._scored(int(t), float(logprobs[t])) for t in best)
        return self._scored(token, float(logprobs[token]), top)

    def _scored(self, token: int, logprob: float, top: tuple[TokenLogprob, ...] = ()) -> TokenLogprob:
        piece = self._piece(token)
        text = piece.decode("utf-8", errors="replace")
        return TokenLogprob(token=text, token_bytes=piece, logprob=min(logprob, 0.0), top=top)

    # KV-cache reuse. The same prompt must give the same logits whatever the cache holds
    # (temperature 0 and a fixed seed promise the same answer), and llama.cpp's results
    # depend in the last bits on how the tokens were split into batches. So a prompt is
    # always evaluated in n_batch-sized chunks counted from position 0, and only positions
    # that were evaluated inside such a full chunk ("clean") are reused. The partial last
    # chunk of a prompt and generated tokens (evaluated one by one) are evaluated again.

    def _aligned(self, n: int) -> int:
        return n - n % self._llm.n_batch

    def reusable_prefix(self, prompt: Sequence[int]) -> int:
        """How many leading tokens of ``prompt`` the KV cache holds, evaluated exactly as a
        fresh evaluation would: a multiple of n_batch, and always short of the whole prompt
        (the last chunk is evaluated again to give the logits of the next token)."""
        llm = self._llm
        shared = common_prefix(llm.input_ids[: min(llm.n_tokens, self._clean)], prompt)
        reuse = self._aligned(shared)
        if reuse >= len(prompt):
            reuse = self._aligned(max(0, len(prompt) - 1))
        return reuse

    def _start_at(self, prompt: Sequence[int]) -> int:
        """Cut the cache back to the reusable prefix of ``prompt``; returns its length."""
        llm = self._llm
        reuse = self.reusable_prefix(prompt)
        self._clean = 0  # until this evaluation ends (an error may leave it half done)
        if reuse > 0 and not llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            reuse = 0  # this model's memory cannot drop a tail (recurrent): start over
        if reuse == 0:
            llm.reset()
        llm.n_tokens = reuse
        return reuse

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
        payload = _image_payload(messages, images)
        finish, produced = "stop", 0
        with self._lock:
            if self._kv is not None:
                self._kv.leave(self._llm, clean=self._clean)
            self._clean = 0  # llama-cpp-python's own prefix reuse runs here: nothing is clean after it
            try:
                # llama-cpp-python types messages as TypedDicts and stream=True's result as a union
                llm: Any = self._live()
                stream = llm.create_chat_completion(
                    messages=payload,
                    stream=True,
                    max_tokens=config.max_tokens,
                    temperature=config.temperature,
                    top_k=config.top_k,
                    top_p=config.top_p,
                    min_p=config.min_p,
                    typical_p=config.typical_p,
                    repeat_penalty=config.repeat_penalty,
                    presence_penalty=config.presence_penalty,
                    frequency_penalty=config.frequency_penalty,
                    stop=list(config.stop) or None,
                    seed=config.seed if config.seed >= 0 else None,
                )
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
            self._clean = 0
            llm = self._live()
            llm.reset()
            if self._kv is not None:
                self._kv.forget_live()
            llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None

    def close(self) -> None:
        with self._lock:
            if self._kv is not None:
                self._kv.close(self._loaded, clean=self._clean)
            llm, self._loaded = self._loaded, None
            if llm is not None:
                llm.close()


def _image_payload(messages: Sequence[Message], images: Sequence[Path]) -> list[dict[str, Any]]:
    """OpenAI-style messages with ``images`` as data URIs in the last one."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": messages[-1].content}]
    parts += [{"type": "image_url", "image_url": {"url": _data_uri(Path(p))}} for p in images]
    payload: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages[:-1]]
    payload.append({"role": messages[-1].role, "content": parts})
    return payload


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


def _drain(scored: list[TokenLogprob]) -> tuple[TokenLogprob, ...] | None:
    if not scored:
        return None
    out = tuple(scored)
    scored.clear()
    return out


def json_schema_grammar(schema: Any) -> str:
    """A GBNF grammar that only lets the model write JSON valid under ``schema``."""
    import json

    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except (ValueError, TypeError, KeyError, RecursionError, NotImplementedError) as e:
        raise ConfigError(
            f"This JSON schema cannot be turned into a grammar: {e}", field="response_format"
        ) from e


def json_object_grammar() -> str:
    """A GBNF grammar for any JSON object."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _ggml_type(llama_cpp, name: str) -> int:
    attr = f"GGML_TYPE_{name.upper()}"
    if not hasattr(llama_cpp, attr):
        raise ModelError(f"Unknown KV cache type {name!r}; use f16, q8_0, q4_0 ...")
    return getattr(llama_cpp, attr)
