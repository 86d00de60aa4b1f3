"""Plain functions behind the chat page. Tests call them without a browser.

Each takes ``services`` first; app/ui.py binds it with functools.partial.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import GenerationConfig
from engine.errors import EngineError
from engine.types import ContextReport, Done, Sources, TextDelta, TurnStarted

from .citations import source_link
from .controls import CONTROL_FIELDS, control_values
from .markup import error_markdown, escape_inline, escape_text, safe_markdown
from .page_updates import UpdateClock

if TYPE_CHECKING:
    from engine.factory import Services

log = logging.getLogger("hearth.app")

ChatHistory = list[dict[str, Any]]
#: what a turn streams to the page: (history, conversation_id, textbox value, edit_mode)
TurnUpdates = Iterator[tuple[ChatHistory, str | None, str, bool]]


def friendly(error: BaseException) -> str:
    """What the user sees for an error: the engine's message, never a traceback."""
    if isinstance(error, EngineError):
        return error_markdown(error)
    log.exception("unexpected error", exc_info=error)
    return "⚠️ **Unexpected error**: something went wrong inside Hearth (details are in the server log)."


def config_from_controls(values: list | tuple) -> GenerationConfig:
    """Build a validated GenerationConfig from control values (CONTROL_FIELDS order)."""
    return GenerationConfig.from_values(dict(zip(CONTROL_FIELDS, values, strict=True)))


# rendering


def status_title(
    *,
    ttft_s: float | None,
    tokens_per_s: float | None,
    used: int | None,
    n_ctx: int | None,
    finish_reason: str | None = None,
    notes: tuple[str, ...] = (),
) -> str:
    parts = []
    if ttft_s is not None:
        parts.append(f"{ttft_s:.2f} s to first token")
    if tokens_per_s:
        parts.append(f"{tokens_per_s:.1f} tok/s")
    if used is not None and n_ctx:
        parts.append(f"{used:,} / {n_ctx:,} tokens in context")
    if finish_reason == "cancelled":
        parts.append("stopped")
    elif finish_reason == "length":
        parts.append("hit max tokens")
    parts.extend(f"⚠️ {escape_inline(note)}" for note in notes)  # "documents unavailable: <reason>"
    return "📊 " + " · ".join(parts)


def sources_markdown(hits: list[dict[str, Any]]) -> str:
    """Each source with where it lies; a document passage is a link that opens it (app/citations.py)."""
    lines = []
    for number, hit in enumerate(hits, 1):
        where = hit.get("source") or hit.get("kind", "")
        if hit.get("location"):
            where += f", {hit['location']}"
        elif hit.get("page") is not None:
            where += f", page {hit['page']}"
        snippet = " ".join(str(hit.get("text", "")).split())
        snippet = snippet[:400] + ("…" if len(snippet) > 400 else "")
        label = source_link(hit, f"**[{number}] {escape_inline(where)}**")
        lines.append(f"{label}\n\n> {escape_text(snippet)}")
    return "\n\n".join(lines)


def context_markdown(report: ContextReport | None) -> str:
    if report is None:
        return ""
    used = sum(report.sections.values())
    rows = [
        f"| {name.replace('_', ' ')} | {tokens:,} |" for name, tokens in report.sections.items() if tokens
    ]
    rows.append(f"| headroom | {max(report.budget - used, 0):,} |")
    return (
        "| context | tokens |\n|---|---:|\n"
        + "\n".join(rows)
        + f"\n\nBudget {report.budget:,} of n_ctx {report.n_ctx:,}."
    )


def assistant_messages(
    text: str, *, title: str | None, details: str = "", sources: list[dict] | None = None
) -> ChatHistory:
    """The answer, a collapsible status line, sources and images, as chatbot messages."""
    out: ChatHistory = [{"role": "assistant", "content": safe_markdown(text) or "…"}]
    if title:
        out.append(
            {"role": "assistant", "content": details or title, "metadata": {"title": title, "status": "done"}}
        )
    sources = sources or []
    text_hits = [h for h in sources if h.get("kind") != "image"]
    images = [h for h in sources if h.get("kind") == "image" and (h.get("meta") or {}).get("path")]
    if text_hits or images:
        out.append(
            {
                "role": "assistant",
                "content": sources_markdown(sources),
                "metadata": {"title": f"📚 Sources ({len(sources)})", "status": "done"},
            }
        )
    if images:
        out.append(
            {
                "role": "assistant",
                "content": [{"path": h["meta"]["path"], "alt_text": h.get("source", "")} for h in images],
            }
        )
    return out


def conversation_history(services: Services, conversation_id: str | None) -> ChatHistory:
    """A stored conversation as chatbot messages, with each answer's status line and sources."""
    if not conversation_id:
        return []
    n_ctx = services.models.info.n_ctx if services.models.info else None
    history: ChatHistory = []
    for m in services.conversations.messages(conversation_id):
        if m.role == "user":
            history.append({"role": "user", "content": safe_markdown(m.content)})
        elif m.role == "assistant":
            used = (m.prompt_tokens or 0) + (m.completion_tokens or 0)
            title = status_title(
                ttft_s=m.ttft_s,
                tokens_per_s=m.tokens_per_s,
                used=used,
                n_ctx=n_ctx,
                finish_reason=m.finish_reason,
            )
            details = (
                f"Model: {escape_inline(m.model or '?')} · finish: {escape_inline(m.finish_reason or '?')}"
                f" · cached prompt tokens: {m.cached_tokens or 0}"
            )
            history.extend(assistant_messages(m.content, title=title, details=details, sources=m.sources))
    return history


# the chat turn


def respond(
    services: Services,
    conversation_id: str | None,
    message: str,
    history: ChatHistory | None,
    edit_mode: bool,
    system_prompt: str,
    *controls: object,
) -> TurnUpdates:
    """Stream one answer. Yields (history, conversation_id, textbox value, edit_mode).

    A first message starts a conversation with ``system_prompt``.
    """
    yield from _respond(services, conversation_id, message, edit_mode, system_prompt, controls, [])


def respond_with_attachment(
    services: Services,
    conversation_id: str | None,
    message: str,
    history: ChatHistory | None,
    edit_mode: bool,
    system_prompt: str,
    attachment: str | None,
    labels: str,
    collections: list[str] | None,
    *controls: object,
    spare_core: bool = False,
) -> TurnUpdates:
    """Like ``respond``, with an optional attached image shown first: the most similar stored
    images, the closest passages in CLIP space, and zero-shot labels when some are typed.
    ``spare_core``: the page's browser runs on this machine (see Backend.stream_chat)."""
    from .images_handlers import attachment_messages

    preface = attachment_messages(services, attachment, labels) if attachment else []
    if preface and not (message or "").strip():
        shown = conversation_history(services, conversation_id) if conversation_id else []
        yield [*shown, *preface], conversation_id, "", edit_mode
        return
    if not conversation_id and (message or "").strip() and collections:
        conversation_id = services.chat.new_conversation(system_prompt=system_prompt or "").id
        services.conversations.update(conversation_id, collections=list(collections))
    images = [Path(attachment)] if attachment and _model_sees_images(services) else []
    yield from _respond(
        services, conversation_id, message, edit_mode, system_prompt, controls, preface, images, spare_core
    )


def _model_sees_images(services: Services) -> bool:
    info = services.models.info
    return info is not None and services.models.backend.supports_images


def conversation_collections(services: Services, conversation_id: str | None) -> list[str]:
    """The document collections a conversation draws on (empty: all of them)."""
    return services.conversations.get(conversation_id).collections if conversation_id else []


def _respond(
    services: Services,
    conversation_id,
    message,
    edit_mode,
    system_prompt,
    controls,
    preface,
    images=(),
    spare_core=False,
):
    mode = "edit" if edit_mode else "new"
    try:
        config_from_controls(controls)  # bad settings: say so before anything is created
    except EngineError as e:
        shown = conversation_history(services, conversation_id) if conversation_id else []
        yield (
            [*shown, *preface, {"role": "assistant", "content": friendly(e)}],
            conversation_id,
            message,
            edit_mode,
        )
        return
    if not conversation_id and message.strip():
        conversation_id = services.chat.new_conversation(system_prompt=system_prompt or "").id
    yield from _turn(services, conversation_id, message, mode, controls, preface, images, spare_core)


def regenerate(
    services: Services, conversation_id: str | None, *controls: object, spare_core: bool = False
) -> TurnUpdates:
    """Answer the last user message again with the current settings."""
    yield from _turn(services, conversation_id, "", "regenerate", controls, spare_core=spare_core)


def _leave_box() -> tuple[Any, Any]:
    """The message box and the edit flag in a turn's updates after its first (which cleared them):
    left as they are, so what the user types while an answer streams, or just after it ends (the
    last update comes again with Gradio's completion message), is not wiped."""
    import gradio as gr

    return gr.skip(), gr.skip()


def _turn(
    services: Services, conversation_id, message, mode, controls, preface=(), images=(), spare_core=False
):
    shown = [*_history_before_turn(services, conversation_id, mode), *preface]
    if mode != "regenerate":
        shown = [*shown, {"role": "user", "content": safe_markdown(message)}]
    text, leave = "", _leave_box()
    try:
        config = config_from_controls(controls)
        report, sources, clock = None, [], UpdateClock()
        events = services.chat.stream_turn(
            conversation_id, message, config, mode=mode, images=images, spare_core=spare_core
        )
        for event in events:
            if isinstance(event, TurnStarted):
                conversation_id = event.conversation_id
                if mode == "regenerate":
                    shown = conversation_history(services, conversation_id)
                    shown = shown[: _last_user_index(shown) + 1]
                yield [*shown, {"role": "assistant", "content": "…"}], conversation_id, "", False
            elif isinstance(event, ContextReport):
                report = event
            elif isinstance(event, Sources):
                sources = [dataclasses.asdict(hit) for hit in event.hits]
            elif isinstance(event, TextDelta):
                first, text = not text, text + event.text
                if clock.due(first):
                    content = safe_markdown(text)
                    yield [*shown, {"role": "assistant", "content": content}], conversation_id, *leave
            elif isinstance(event, Done):
                yield [*shown, *_answered(event, report, sources)], conversation_id, *leave
    except Exception as e:  # noqa: BLE001 - every failure becomes a message, never a traceback
        kept = text + "\n\n" if text else ""  # a stream that broke mid-answer: its text is saved, show it
        yield (
            [*shown, {"role": "assistant", "content": kept + friendly(e)}],
            conversation_id,
            (message if mode != "regenerate" else ""),
            mode == "edit",
        )


def _answered(done: Done, report: ContextReport | None, sources: list) -> ChatHistory:
    """The finished answer as shown: its text, the timing line, the context and its sources."""
    title = status_title(
        ttft_s=done.timings.ttft_s,
        tokens_per_s=done.timings.tokens_per_s,
        used=done.usage.prompt_tokens + done.usage.completion_tokens,
        n_ctx=done.usage.n_ctx,
        finish_reason=done.finish_reason,
        notes=done.notes,
    )
    return assistant_messages(done.text, title=title, details=context_markdown(report), sources=sources)


def _history_before_turn(services: Services, conversation_id, mode) -> ChatHistory:
    if not conversation_id:
        return []
    shown = conversation_history(services, conversation_id)
    if mode == "edit":
        shown = shown[: _last_user_index(shown)]
    return shown


def _last_user_index(history: ChatHistory) -> int:
    return next((i for i in range(len(history) - 1, -1, -1) if history[i]["role"] == "user"), -1)


def stop(services: Services, conversation_id: str | None) -> None:
    if conversation_id:
        services.chat.stop(conversation_id)


def start_edit(services: Services, conversation_id: str | None) -> tuple[str, bool]:
    """Put the last user message into the textbox and switch Send to 'edit and resend'."""
    if not conversation_id:
        return "", False
    users = [m for m in services.conversations.messages(conversation_id) if m.role == "user"]
    return (users[-1].content, True) if users else ("", False)


# conversations


def conversation_choices(services: Services, query: str = "") -> list[tuple[str, str]]:
    return [(c.title or "Untitled", c.id) for c in services.conversations.list(query or "")]


def open_conversation(services: Services, conversation_id: str | None) -> tuple[ChatHistory, str | None, str]:
    """History, id and system prompt of the chosen conversation."""
    if not conversation_id:
        return [], None, services.settings.system_prompt
    conv = services.conversations.get(conversation_id)
    return conversation_history(services, conversation_id), conversation_id, conv.system_prompt


def new_conversation(services: Services, system_prompt: str) -> str:
    return services.chat.new_conversation(system_prompt=system_prompt or "").id


def rename_conversation(services: Services, conversation_id: str | None, title: str) -> None:
    title = " ".join((title or "").split())[:120]
    if conversation_id and title:
        services.conversations.update(conversation_id, title=title)


def delete_conversation(services: Services, conversation_id: str | None) -> None:
    if conversation_id:
        services.conversations.delete(conversation_id)  # memory forgets it too (a delete hook)


def set_system_prompt(services: Services, conversation_id: str | None, system_prompt: str) -> None:
    if conversation_id:
        services.conversations.update(conversation_id, system_prompt=system_prompt or "")


# presets


def preset_names(services: Services) -> list[str]:
    return services.presets.names()


def apply_preset(services: Services, name: str) -> list:
    return control_values(services.presets.get(name))


def save_preset(services: Services, name: str, *controls: object) -> list[str]:
    services.presets.save(name, config_from_controls(controls))
    return services.presets.names()


def delete_preset(services: Services, name: str) -> list[str]:
    services.presets.delete(name)
    return services.presets.names()
