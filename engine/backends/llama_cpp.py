"""The in-process backend over llama-cpp-python (imported lazily, here and in its helpers:
llama_load, llama_images, grammars; llama_generate and logprobs hold the generation's pure parts).

Streaming is our own loop over ``Llama.generate`` rather than ``create_chat_completion``: that one
re-detokenizes the whole completion on every token (cost grows with the answer); here each token costs
O(1) text work. Prompts are rendered with the GGUF's own chat template, and the KV cache of an unchanged
prompt prefix is reused in a way that keeps answers deterministic (see ``kv_reuse``).
"""

from __future__ import annotations

import ctypes
import functools
import random
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import GenerationConfig, Settings
from ..errors import NO_VISION, ConfigError, GenerationError, ModelError
from ..types import Chunk, Message, Usage
from . import amx_check, attention_check, llama_thread
from .draft_policy import BatchCosts
from .gguf_files import bundled_model_path, check_gguf_file, resolve_model
from .grammars import json_object_grammar, json_schema_grammar
from .kv_reuse import CleanPrefix
from .limits import call_with_deadline
from .llama_generate import AnswerText, sample, with_drafts
from .llama_images import IMAGE_TURN_IGNORES, image_chunks, image_handler, image_payload
from .llama_load import (
    CHATML_TEMPLATE,
    conversation_kv,
    describe,
    fit_model_context,
    import_llama_cpp,
    load_draft,
    load_kwargs,
    load_llama,
    make_formatter,
    probe_rule,
)
from .llama_thread import calls, streams
from .logprobs import drain, token_logprob
from .prompt_tokens import Tokens
from .sampler_chain import CustomChain, chain_for
from .speculative import sampled_index
from .threads import generation_threads, plan_threads

if TYPE_CHECKING:
    import numpy as np
    from llama_cpp import Llama

    from ..studio.trace import TokenTrace

# importable from here, where they lived before the loading, image and grammar helpers had modules
__all__ = [
    "CHATML_TEMPLATE",
    "IMAGE_TURN_IGNORES",
    "LlamaCppBackend",
    "bundled_model_path",
    "json_object_grammar",
    "json_schema_grammar",
]


class LlamaCppBackend:
    """One loaded model; one generation at a time (a lock queues the others)."""

    supports_completion = True

    def __init__(self, settings: Settings, path: Path | None = None):
        path = path or resolve_model(settings.model, settings.models_dir)
        check_gguf_file(path)
        self._llama_cpp = llama_cpp = import_llama_cpp()
        amx_note = amx_check.guard(llama_cpp, path, settings.data_dir)  # before any model loads
        gpu_ok = bool(llama_cpp.llama_supports_gpu_offload())
        n_gpu_layers = (-1 if gpu_ok else 0) if settings.n_gpu_layers is None else settings.n_gpu_layers
        on_gpu = gpu_ok and n_gpu_layers != 0
        n_ctx, note = fit_model_context(llama_cpp, path, settings, on_gpu=on_gpu)
        self.note = " ".join(part for part in (note, amx_note) if part)
        threads = plan_threads(n_threads=settings.n_threads, n_threads_batch=settings.n_threads_batch)
        settings, attention = attention_check.resolve(llama_cpp, settings, on_gpu, threads.generation, n_ctx)
        self._threads = threads  # a page's turn may leave the browser a core (see threads)
        kwargs = load_kwargs(
            llama_cpp, settings, path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, threads=threads
        )
        kwargs["chat_handler"] = image_handler(settings.mmproj, gpu_ok)
        #: whether attached images reach the model (a vision GGUF loaded with its mmproj)
        self.supports_images = kwargs["chat_handler"] is not None
        #: every sampler is driven here (image turns use llama-cpp-python's chain: IMAGE_TURN_IGNORES)
        self.ignored_settings: tuple[str, ...] = ()
        self._loaded: Llama | None = load_llama(llama_cpp, path, kwargs)  # None once closed
        self._lock = threading.Lock()
        # llama.cpp runs only there: one OpenMP team, whichever thread asks (see llama_thread)
        self._thread = llama_thread.acquire()
        # how much of the KV cache a prompt may reuse and stay deterministic (see kv_reuse)
        rule = self._thread.call(probe_rule, llama_cpp, self._llm)
        self._reuse = CleanPrefix(rule)
        self._pieces: dict[int, bytes] = {}
        self._formatter, template_source = make_formatter(self._llm, settings.chat_template)
        self.info = describe(
            self._llm,
            self._formatter,
            path,
            template_source=template_source,
            gpu_ok=gpu_ok,
            n_gpu_layers=n_gpu_layers,
            threads=threads,
            note=self.note,
            attention=attention.note,
        )
        self._kv = (
            conversation_kv(llama_cpp, self._llm, self._formatter, settings, path, kwargs, rule)
            if settings.kv_snapshots
            else None
        )
        self._prompt_lookup = settings.prompt_lookup
        self._batch_costs = BatchCosts()  # what drafts cost on this model and machine, learned
        self._draft = load_draft(llama_cpp, self._llm, settings, kwargs) if settings.draft_model else None

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
        return self._tokens.count(text)

    @functools.cached_property
    def _tokens(self) -> Tokens:  # each text counted once, each message's prompt piece tokenized once
        return Tokens(self._live, self._llama_cpp)

    def render(self, messages: Sequence[Message]) -> list[int]:
        """The templated prompt's tokens; message contents can never become control tokens.

        The template's own text is tokenized with special tokens parsed (that is how
        ``<|im_start|>`` becomes a role marker); a message that spells a control token
        (a document, a memory, a stored answer) gets that spelling broken first, so it
        stays plain text whatever the template. Other contents are left byte for byte.
        """
        self._live()  # a closed model: its typed error before any work
        # Any: llama-cpp-python types messages as TypedDicts, one per (literal) role
        payload: list[Any] = [{"role": m.role, "content": self._tokens.defused(m.content)} for m in messages]
        try:  # a template is untrusted code: nested loops could render for hours
            result = call_with_deadline(lambda: self._formatter(messages=payload))
        except GenerationError:
            raise
        except Exception as e:  # a template may raise_exception() on e.g. role order
            raise GenerationError(f"The model's chat template rejected the conversation: {e}") from e
        add_bos = not result.added_special
        return self._tokens.prompt(result.prompt, add_bos)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.render(messages))

    @streams
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
        spare_core: bool = False,
        trace: TokenTrace | None = None,
    ) -> Generator[Chunk, Any, None]:
        """As the Backend protocol says; ``trace`` (the next-token view's record) gets each
        generated token with the raw logits it was drawn from."""
        if images:
            yield from self._stream_with_images(messages, config, images, cancel)
            return
        prompt = self.render(messages)
        advice = " Start a new chat or load the model with a larger context."
        yield from self._run(prompt, config, cancel, grammar, logprobs, cache_key, advice, trace, spare_core)

    @streams
    def stream_completion(
        self,
        prompt: str,
        config: GenerationConfig,
        *,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        logprobs: int | None = None,
    ) -> Generator[Chunk, Any, None]:
        """Continue raw text: no chat template; special-token text in ``prompt`` is parsed as
        such (the caller writes the whole prompt, as with llama.cpp's /completion)."""
        tokens = self._llm.tokenize(prompt.encode("utf-8", "replace"), add_bos=True, special=True)
        if not tokens:
            raise ConfigError("The prompt is empty.", field="prompt")
        yield from self._run(tokens, config, cancel, grammar, logprobs, None, "")

    def _run(
        self, prompt, config, cancel, grammar, logprobs, cache_key, advice: str, trace=None, spare_core=False
    ) -> Iterator[Chunk]:
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
                self._reuse.clean = self._kv.before_turn(
                    self._llm, cache_key, prompt, clean=self._reuse.clean
                )
            max_new = min(config.max_tokens, room)
            with generation_threads(self._llama_cpp, self._llm, self._threads, spare_core):
                yield from self._generate(prompt, config, max_new, cancel, grammar, logprobs, trace)
            if self._kv is not None:
                self._kv.after_turn(self._llm, cache_key, clean=self._reuse.clean)

    def _generate(
        self,
        prompt: list[int],
        config: GenerationConfig,
        max_new: int,
        cancel: threading.Event | None,
        grammar: str | None,
        logprobs: int | None = None,
        trace: TokenTrace | None = None,
    ) -> Iterator[Chunk]:
        llm = self._llm
        cached = self._reuse.start_at(llm, prompt)
        try:
            start = self._reuse.head(llm, prompt, cached)
        except (RuntimeError, ValueError) as e:
            raise GenerationError(f"llama.cpp failed while reading the prompt: {e}") from e
        seed = config.seed if config.seed >= 0 else random.randrange(2**31)
        llm.set_seed(seed)
        compiled = self._llama_cpp.LlamaGrammar.from_string(grammar, verbose=False) if grammar else None
        # DRY, XTC, top-n-sigma, ...: llama.cpp's own samplers in a chain of our making; the
        # stock settings keep llama-cpp-python's chain (over fewer candidates: the same tokens)
        chain = chain_for(self._llama_cpp, llm, config, seed, compiled)
        custom = CustomChain(llm, chain) if chain is not None else None
        tokens = sample(llm, prompt[start:], config, compiled)
        drafts = (self._draft, self._prompt_lookup, self._batch_costs)
        tokens = with_drafts(llm, tokens, prompt, max_new, config, *drafts)
        text = AnswerText(config.stop)
        try:
            finish, produced = yield from self._decode(
                tokens, text, max_new, cancel, logprobs, trace, position=len(prompt)
            )
        except (RuntimeError, ValueError) as e:
            raise GenerationError(f"llama.cpp failed while generating: {e}") from e
        finally:
            tokens.close()
            if custom is not None:
                custom.close()  # a generation that never started leaves no override behind
            self._reuse.evaluated(llm, len(prompt))
        usage = Usage(
            prompt_tokens=len(prompt), completion_tokens=produced, cached_tokens=cached, n_ctx=self.info.n_ctx
        )
        yield Chunk(text=text.tail(), finish_reason=finish, usage=usage, logprobs=drain(text.scored))

    def _decode(
        self,
        tokens: Iterator[int],
        text: AnswerText,
        max_new: int,
        cancel: threading.Event | None,
        logprobs: int | None,
        trace: TokenTrace | None,
        *,
        position: int,
    ) -> Generator[Chunk, None, tuple[str, int]]:
        """Text chunks of ``tokens`` until an end, a stop string, ``max_new`` or ``cancel``;
        returns the finish reason and how many tokens were produced. ``position``: where the
        first token sits in the context (a drafted batch holds several tokens' logits)."""
        is_eog, vocab = self._llama_cpp.llama_vocab_is_eog, self._llm._model.vocab
        produced = 0
        for token in tokens:
            if is_eog(vocab, token):
                return "stop", produced
            index = sampled_index(self._llm, position + produced)
            produced += 1
            if logprobs is not None:
                # the raw probabilities (before the samplers, as OpenAI reports them) of the
                # logits that drew ``token``: ``generate`` is suspended at its yield, they are intact
                text.scored.append(token_logprob(self._logits(index), token, logprobs, self._piece))
            if trace is not None:
                trace.add(token, self._logits(index))
            out = text.stops.feed(text.decoder.decode(self._piece(token)))
            if out:
                yield Chunk(text=out, logprobs=drain(text.scored))
            if text.stops.stopped:
                return "stop", produced
            if produced >= max_new:
                break
            if cancel is not None and cancel.is_set():
                return "cancelled", produced
        return "length", produced

    def _logits(self, index: int = -1) -> np.ndarray:
        """The logits at ``index`` of the last batch, -1 its last position (a view into llama.cpp's
        buffer: copy to keep)."""
        import numpy as np

        return np.ctypeslib.as_array(self._llm._ctx.get_logits_ith(index), shape=(self._llm.n_vocab(),))

    def token_pieces(self, tokens: Sequence[int]) -> list[bytes]:
        """Each token's bytes in this model's vocabulary (a piece may be part of a UTF-8 character)."""
        self._live()
        n_vocab = self._llm.n_vocab()
        return [self._piece(t) if 0 <= t < n_vocab else b"" for t in tokens]

    def reusable_prefix(self, prompt: Sequence[int]) -> int:
        """How many leading tokens of ``prompt`` the KV cache may reuse (see kv_reuse)."""
        return self._reuse.reusable(self._llm, prompt)

    def _stream_with_images(
        self,
        messages: Sequence[Message],
        config: GenerationConfig,
        images: Sequence[Path],
        cancel: threading.Event | None,
    ) -> Iterator[Chunk]:
        """Images attached to the last user message, through llama.cpp's multimodal handler."""
        if not self.supports_images:
            raise GenerationError(NO_VISION)
        payload = image_payload(messages, images)
        with self._lock:
            if self._kv is not None:
                self._kv.leave(self._llm, clean=self._reuse.clean)
            self._reuse.forget()  # llama-cpp-python's own prefix reuse runs here: nothing is clean after it
            finish, produced = yield from image_chunks(self._live(), payload, config, cancel)
        usage = Usage(completion_tokens=produced, n_ctx=self.info.n_ctx)
        yield Chunk(text="", finish_reason=finish, usage=usage)

    def _piece(self, token: int) -> bytes:
        if (piece := self._pieces.get(token)) is None:
            buf = ctypes.create_string_buffer(256)
            n = self._llama_cpp.llama_token_to_piece(self._llm._model.vocab, token, buf, 256, 0, False)
            piece = self._pieces[token] = buf.raw[: max(n, 0)]
        return piece

    @calls
    def clear_cache(self) -> None:
        """Forget the KV cache (benchmarks compare against a cold prefix)."""
        with self._lock:
            self._reuse.forget()
            llm = self._live()
            llm.reset()
            if self._kv is not None:
                self._kv.forget_live()
            llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None

    @calls
    def settle(self, cache_key: str | None) -> int:
        """Once an answer is done, while the user reads it: evaluate its tokens again in whole
        n_batch chunks, so the next turn reuses them (see kv_reuse) and its snapshot keeps them."""
        with self._lock:
            llm = self._loaded
            if llm is None or (self._kv is not None and self._kv.live_key != cache_key):
                return 0  # unloaded, or another conversation holds the KV now
            settled = self._reuse.settle(llm)
            if settled and self._kv is not None:
                self._kv.after_turn(llm, cache_key, clean=self._reuse.clean)
            return settled

    def close(self) -> None:
        thread, self._thread = self._thread, llama_thread.LlamaThread(start=False)
        try:
            thread.call(self._close)
        finally:
            llama_thread.release(thread)

    def _close(self) -> None:
        with self._lock:
            if self._kv is not None:
                self._kv.close(self._loaded, clean=self._reuse.clean)
            llm, self._loaded = self._loaded, None
            if llm is not None:
                llm.close()
            if self._draft is not None:
                self._draft.close()
                self._draft = None
