"""Layout and event wiring only; behaviour lives in the *_handlers modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from . import citations as ch
from . import documents_handlers as dh
from . import handlers as h
from .branches_panel import build_branch_nav, build_files_box, wire_branches
from .compare_panel import build_compare_panel
from .controls import build_controls
from .documents_panel import build_documents_panel
from .images_panel import build_images_panel
from .memory_panel import build_memory_panel
from .model_panel import build_model_panel
from .studio_panel import build_preset_files, build_studio_panel

if TYPE_CHECKING:
    from engine.factory import Services

CSS_PATH = Path(__file__).resolve().parent.parent / "assets" / "hearth.css"


@dataclass
class _ChatParts:
    """The Chat tab's components, filled by the builders below and wired by the _wire_* functions."""

    conversation_id: Any = None
    edit_mode: Any = None
    new_btn: Any = None
    search: Any = None
    chats: Any = None
    title_box: Any = None
    rename_btn: Any = None
    delete_btn: Any = None
    files: Any = None
    chatbot: Any = None
    message: Any = None
    send: Any = None
    attachment: Any = None
    labels: Any = None
    stop: Any = None
    regen: Any = None
    edit: Any = None
    nav: Any = None
    system_prompt: Any = None
    chat_collections: Any = None
    collections_note: Any = None
    preset: Any = None
    preset_name: Any = None
    save_preset: Any = None
    delete_preset: Any = None
    controls: list[Any] = field(default_factory=list)


def build_ui(services: Services, *, browser_here: bool = True) -> gr.Blocks:
    """The page. ``browser_here``: its browsers run on this machine (served on loopback), so
    an answer decodes on a core fewer while the browser renders it (Backend.stream_chat)."""
    s = services
    p = _ChatParts()
    with gr.Blocks(title="Hearth", analytics_enabled=False) as demo:
        p.conversation_id = gr.State(None)
        p.edit_mode = gr.State(False)
        _sidebar(s, p)
        with gr.Tabs():
            with gr.Tab("Chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        _chat_column(s, p)
                    with gr.Column(scale=1, min_width=280):
                        _settings_column(s, p)
                # studio: answer details, re-run exactly, next-token view (app/studio_panel.py)
                build_studio_panel(
                    s,
                    p.conversation_id,
                    p.controls,
                    [p.chatbot, p.conversation_id, p.message, p.edit_mode],
                    browser_here=browser_here,
                )
                build_compare_panel(
                    s,
                    chatbot=p.chatbot,
                    conversation_id=p.conversation_id,
                    controls=p.controls,
                    browser_here=browser_here,
                )
            with gr.Tab("Model"):
                build_model_panel(s)
            with gr.Tab("Documents"):
                build_documents_panel(s, demo)
            with gr.Tab("Images"):
                build_images_panel(s)
            with gr.Tab("Memory"):
                build_memory_panel(s)
        refresh_list = partial(_refresh_list, s)
        turns = _wire_turns(s, p, refresh_list, browser_here)
        _wire_conversations(s, demo, p, refresh_list, turns)
    return demo


def _sidebar(s: Services, p: _ChatParts) -> None:
    with gr.Sidebar(open=True):
        gr.Markdown("## 🔥 Hearth")
        p.new_btn = gr.Button("＋ New chat", variant="primary", elem_id="new-chat")
        p.search = gr.Textbox(placeholder="Search chats…", show_label=False, elem_id="chat-search")
        p.chats = gr.Radio(choices=h.conversation_choices(s), label="Conversations", elem_id="chat-list")
        with gr.Accordion("Rename / delete", open=False):
            p.title_box = gr.Textbox(label="New title", elem_id="rename-box")
            p.rename_btn = gr.Button("Rename", size="sm")
            p.delete_btn = gr.Button("Delete this chat", variant="stop", size="sm")
        p.files = build_files_box()


def _chat_column(s: Services, p: _ChatParts) -> None:
    p.chatbot = gr.Chatbot(
        elem_id="hearth-chat",
        label="Chat",
        show_label=False,
        height=560,
        buttons=["copy", "copy_all"],
        sanitize_html=True,
        allow_tags=False,
        render_markdown=True,
        reasoning_tags=[("<think>", "</think>")],
        feedback_options=None,
        placeholder="Ask anything. Everything stays on this computer.",
    )
    with gr.Row():
        p.message = gr.Textbox(
            placeholder="Message Hearth…",
            show_label=False,
            scale=5,
            # lines=1: Gradio then sends on Enter and leaves Shift+Enter to
            # the textarea (a newline); with lines>1 it is the other way round
            lines=1,
            max_lines=12,
            elem_id="message-box",
        )
        p.send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
    with gr.Accordion("🖼 Attach an image", open=False):
        with gr.Row():
            p.attachment = gr.Image(
                type="filepath",
                label="Image",
                height=160,
                elem_id="attach-image",
                sources=["upload", "clipboard"],
            )
            p.labels = gr.Textbox(
                label="Labels to try (comma-separated, optional)",
                placeholder="cat, dog, diagram",
                elem_id="attach-labels",
            )
    with gr.Row():
        p.stop = gr.Button("⏹ Stop", elem_id="stop", size="sm")
        p.regen = gr.Button("↻ Regenerate", elem_id="regenerate", size="sm")
        p.edit = gr.Button("✏️ Edit last message", elem_id="edit-last", size="sm")
    _citation_viewer(s)
    p.nav = build_branch_nav()


def _settings_column(s: Services, p: _ChatParts) -> None:
    p.system_prompt = gr.Textbox(
        label="System prompt",
        value=s.settings.system_prompt,
        lines=3,
        elem_id="system-prompt",
    )
    with gr.Accordion("📚 Documents for this chat", open=False):
        p.chat_collections = gr.Dropdown(
            choices=_collections(s),
            value=[],
            multiselect=True,
            label="Collections",
            info="Answers draw on these; none chosen = all collections.",
            elem_id="chat-collections",
        )
        p.collections_note = gr.Markdown()
    with gr.Accordion("Generation settings", open=True):
        with gr.Row():
            p.preset = gr.Dropdown(
                choices=h.preset_names(s),
                value="Balanced",
                label="Preset",
                elem_id="preset",
                scale=2,
            )
            p.preset_name = gr.Textbox(label="Save as", scale=2)
        with gr.Row():
            p.save_preset = gr.Button("Save preset", size="sm")
            p.delete_preset = gr.Button("Delete preset", size="sm")
        build_preset_files(s, p.preset)  # studio: preset JSON files, sampler support
        p.controls = build_controls()


def _wire_turns(s: Services, p: _ChatParts, refresh_list: Any, browser_here: bool) -> list[Any]:
    """Send, Regenerate, Stop, Edit and the presets: what starts or shapes an answer. Returns
    the events that stream an answer (leaving the chat cancels them)."""
    chat_outputs = [p.chatbot, p.conversation_id, p.message, p.edit_mode]
    turn_inputs = [p.conversation_id, p.message, p.chatbot, p.edit_mode, p.system_prompt]
    turns = []
    for trigger in (p.send.click, p.message.submit):
        turn = trigger(
            partial(h.respond_with_attachment, s, spare_core=browser_here),
            [*turn_inputs, p.attachment, p.labels, p.chat_collections, *p.controls],
            chat_outputs,
            concurrency_limit=4,
            concurrency_id="chat",
            show_progress="hidden",
        )
        turn.then(refresh_list, [p.search, p.conversation_id], p.chats).then(lambda: None, None, p.attachment)
        turns.append(turn)
    turns.append(
        p.regen.click(
            partial(h.regenerate, s, spare_core=browser_here),
            [p.conversation_id, *p.controls],
            chat_outputs,
            concurrency_limit=4,
            concurrency_id="chat",
        )
    )
    p.stop.click(partial(h.stop, s), [p.conversation_id], None, concurrency_limit=None, queue=False)
    p.edit.click(partial(h.start_edit, s), [p.conversation_id], [p.message, p.edit_mode])
    p.preset.input(partial(h.apply_preset, s), [p.preset], p.controls)
    p.save_preset.click(partial(_save_preset, s), [p.preset_name, *p.controls], p.preset)
    p.delete_preset.click(partial(_delete_preset, s), [p.preset], p.preset)
    return turns


def _wire_conversations(s: Services, demo: gr.Blocks, p: _ChatParts, refresh_list: Any, turns: list) -> None:
    """The sidebar's list, opening, renaming and deleting chats, collections and branches.
    Leaving a chat while it answers (New chat, another chat, Delete) stops the answer first, as
    Stop does (what was written is saved), and the page stops showing its stream: otherwise its
    next update would put the old chat back on screen."""
    list_io = ([p.search, p.conversation_id], p.chats)
    demo.load(refresh_list, *list_io)
    demo.load(None, js=ch.CLICK_JS)  # sources open the citation viewer
    p.chatbot.clear(lambda: (None, "", False), None, [p.conversation_id, p.message, p.edit_mode])

    def leave(trigger: Any) -> Any:
        return trigger(partial(h.stop, s), [p.conversation_id], None, queue=False, cancels=turns)

    leave(p.chats.input).then(
        partial(h.open_conversation, s), [p.chats], [p.chatbot, p.conversation_id, p.system_prompt]
    ).then(partial(h.conversation_collections, s), [p.conversation_id], p.chat_collections)
    p.chat_collections.focus(lambda: gr.Dropdown(choices=_collections(s)), None, p.chat_collections)
    p.chat_collections.input(
        partial(dh.set_conversation_collections, s),
        [p.conversation_id, p.chat_collections],
        p.collections_note,
    )
    p.search.change(refresh_list, *list_io)
    leave(p.new_btn.click).then(
        _new_chat,
        [p.edit_mode],
        [p.chatbot, p.conversation_id, p.message, p.edit_mode, p.chat_collections],
    ).then(refresh_list, *list_io)
    p.rename_btn.click(partial(h.rename_conversation, s), [p.conversation_id, p.title_box], None).then(
        refresh_list, *list_io
    )
    leave(p.delete_btn.click).then(partial(h.delete_conversation, s), [p.conversation_id], None).then(
        lambda: ([], None), None, [p.chatbot, p.conversation_id]
    ).then(refresh_list, *list_io)
    p.system_prompt.blur(partial(h.set_system_prompt, s), [p.conversation_id, p.system_prompt], None)
    wire_branches(
        s,
        demo,
        p.nav,
        p.files,
        chatbot=p.chatbot,
        conversation_id=p.conversation_id,
        system_prompt=p.system_prompt,
        refresh_list=refresh_list,
        list_io=list_io,
    )


def _citation_viewer(s: Services) -> None:
    """The passage a clicked source cites, in its surroundings (app/citations.py says how a
    click in the chat reaches ``open_citation``)."""
    request = gr.Textbox(visible="hidden", elem_id="cite-request", show_label=False)
    with gr.Column(visible=False, elem_id="source-viewer") as viewer:
        with gr.Row():
            title = gr.Markdown(elem_id="source-title")
            close = gr.Button("✕ Close", size="sm", scale=0, elem_id="source-close")
        body = gr.HTML(elem_id="source-passage", padding=True)

    def show(value: str):
        heading, passage = ch.open_citation(s, value)
        return heading, passage, gr.Column(visible=True)

    request.change(show, [request], [title, body, viewer], queue=False).then(None, js=ch.SCROLL_JS)
    close.click(lambda: gr.Column(visible=False), None, viewer, queue=False)


def _collections(s) -> list[str]:
    return s.documents.collections() if s.documents is not None else []


def _new_chat(editing: bool):
    """An empty chat. A draft in the message box stays (typed while the click travels, or meant
    for the new chat); only an edit of the old chat's message is cleared."""
    return [], None, "" if editing else gr.skip(), False, []


def _refresh_list(s, query: str, conversation_id: str | None):
    return gr.Radio(choices=h.conversation_choices(s, query), value=conversation_id)


def _save_preset(s, name: str, *controls):
    try:
        names = h.save_preset(s, name, *controls)
    except Exception as e:  # noqa: BLE001 - shown to the user, app stays up
        gr.Warning(h.friendly(e))
        return gr.Dropdown()
    return gr.Dropdown(choices=names, value=name.strip())


def _delete_preset(s, name: str):
    try:
        names = h.delete_preset(s, name)
    except Exception as e:  # noqa: BLE001
        gr.Warning(h.friendly(e))
        return gr.Dropdown()
    return gr.Dropdown(choices=names, value="Balanced")


def launch(
    services: Services,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | list[tuple[str, str]] | None = None,
    allowed_hosts: tuple[str, ...] = (),
    max_upload_bytes: int | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    routers: tuple = (),
    block: bool = True,
):
    """Serve the page (app/server.py: our FastAPI app, guarded, Gradio mounted in it).

    With ``block=False`` the server runs in a thread; the returned handle has ``close()``.
    """
    from .server import DEFAULT_MAX_UPLOAD_MB, create_app, serve

    app = create_app(
        services,
        host=host,
        port=port,
        auth=auth,
        allowed_hosts=allowed_hosts,
        max_upload_bytes=max_upload_bytes or DEFAULT_MAX_UPLOAD_MB * 2**20,
        routers=routers,
    )
    return serve(app, host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, block=block)
