"""Image turns of ``LlamaCppBackend``: a vision GGUF's projector (mmproj) and llama-cpp-python's
multimodal chat handler, which takes the images as data URIs in OpenAI-style messages.

llama_cpp is imported lazily, as in llama_cpp.py.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import CHAIN_ONLY_SETTINGS, GenerationConfig
from ..errors import GenerationError, ModelError
from ..types import Chunk, Message
from .gguf_files import check_gguf_file

if TYPE_CHECKING:
    from llama_cpp.llama_chat_format import MTMDChatHandler

#: settings an image turn cannot apply (llama-cpp-python's chat handler builds the stock chain)
IMAGE_TURN_IGNORES = CHAIN_ONLY_SETTINGS


def image_handler(mmproj: str | None, use_gpu: bool) -> MTMDChatHandler | None:
    """The multimodal chat handler for the projector ``mmproj``; None without one."""
    if not mmproj:
        return None
    path = Path(mmproj).expanduser()
    check_gguf_file(path)
    from llama_cpp.llama_chat_format import MTMDChatHandler

    try:
        return MTMDChatHandler(clip_model_path=str(path), verbose=False, use_gpu=use_gpu)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelError(f"Could not load the projector {path.name}: {e}") from e


def image_chunks(
    llm: Any,
    payload: list[dict[str, Any]],
    config: GenerationConfig,
    cancel: threading.Event | None,
) -> Generator[Chunk, None, tuple[str, int]]:
    """The answer to ``payload`` (``image_payload``) as text chunks; returns the finish reason
    and how many chunks came.

    ``llm`` is the loaded ``Llama`` (llama-cpp-python types messages as TypedDicts and
    stream=True's result as a union, so it goes untyped here).
    """
    finish, produced = "stop", 0
    try:
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
            logit_bias=dict(config.logit_bias) or None,
        )
        for part in stream:
            choice = part["choices"][0]
            text = choice["delta"].get("content") or ""
            if text:
                produced += 1
                yield Chunk(text=text)
            finish = choice.get("finish_reason") or finish
            if cancel is not None and cancel.is_set():
                return "cancelled", produced
    except (RuntimeError, ValueError) as e:
        raise GenerationError(
            f"The image could not go to the model ({e}). Check that the projector (mmproj) "
            "file is the one made for the loaded model."
        ) from e
    return finish, produced


def image_payload(messages: Sequence[Message], images: Sequence[Path]) -> list[dict[str, Any]]:
    """OpenAI-style messages with ``images`` as data URIs in the last one."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": messages[-1].content}]
    parts += [{"type": "image_url", "image_url": {"url": data_uri(Path(p))}} for p in images]
    payload: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages[:-1]]
    payload.append({"role": messages[-1].role, "content": parts})
    return payload


def data_uri(path: Path) -> str:
    kind = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".gif": "gif", ".bmp": "bmp"}.get(
        path.suffix.lower(), "png"
    )
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
