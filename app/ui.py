"""Layout and event wiring only; behaviour lives in the *_handlers modules."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from . import citations as ch
from . import documents_handlers as dh
from . import handlers as h
from . import model_handlers as mh
from .branches_panel import build_branch_nav, build_files_box, wire_branches
from .compare_panel import build_compare_panel
from .controls import build_controls
from .documents_panel import build_documents_panel
from .images_panel import build_images_panel
from .memory_panel import build_memory_panel
from .studio_panel import build_preset_files, build_studio_panel

if TYPE_CHECKING:
    from engine.factory import Services

CSS_PATH = Path(__file__).resolve().parent.parent / "assets" / "hearth.css"


def build_ui(services: Services) -> gr.Blocks:
    s = services
    with gr.Blocks(title="Hearth", analytics_enabled=False) as demo:
        conversation_id = gr.State(None)
        edit_mode = gr.State(False)
        with gr.Sidebar(open=True):
            gr.Markdown("## 🔥 Hearth")
            new_btn = gr.Button("＋ New chat", variant="primary", elem_id="new-chat")
            search = gr.Textbox(placeholder="Search chats…", show_label=False, elem_id="chat-search")
            chats = gr.Radio(choices=h.conversation_choices(s), label="Conversations", elem_id="chat-list")
            with gr.Accordion("Rename / delete", open=False):
                title_box = gr.Textbox(label="New title", elem_id="rename-box")
                rename_btn = gr.Button("Rename", size="sm")
                delete_btn = gr.Button("Delete this chat", variant="stop", size="sm")
            files = build_files_box()
        with gr.Tabs():
            with gr.Tab("Chat"):
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
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
                            message = gr.Textbox(
                                placeholder="Message Hearth…",
                                show_label=False,
                                scale=5,
                                # lines=1: Gradio then sends on Enter and leaves Shift+Enter to
                                # the textarea (a newline); with lines>1 it is the other way round
                                lines=1,
                                max_lines=12,
                                elem_id="message-box",
                            )
                            send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                        with gr.Accordion("🖼 Attach an image", open=False):
                            with gr.Row():
                                attachment = gr.Image(
                                    type="filepath",
                                    label="Image",
                                    height=160,
                                    elem_id="attach-image",
                                    sources=["upload", "clipboard"],
                                )
                                labels = gr.Textbox(
                                    label="Labels to try (comma-separated, optional)",
                                    placeholder="cat, dog, diagram",
                                    elem_id="attach-labels",
                                )
                        with gr.Row():
                            stop = gr.Button("⏹ Stop", elem_id="stop", size="sm")
                            regen = gr.Button("↻ Regenerate", elem_id="regenerate", size="sm")
                            edit = gr.Button("✏️ Edit last message", elem_id="edit-last", size="sm")
                        _citation_viewer(s)
                        nav = build_branch_nav()
                    with gr.Column(scale=1, min_width=280):
                        system_prompt = gr.Textbox(
                            label="System prompt",
                            value=s.settings.system_prompt,
                            lines=3,
                            elem_id="system-prompt",
                        )
                        with gr.Accordion("📚 Documents for this chat", open=False):
                            chat_collections = gr.Dropdown(
                                choices=_collections(s),
                                value=[],
                                multiselect=True,
                                label="Collections",
                                info="Answers draw on these; none chosen = all collections.",
                                elem_id="chat-collections",
                            )
                            collections_note = gr.Markdown()
                        with gr.Accordion("Generation settings", open=True):
                            with gr.Row():
                                preset = gr.Dropdown(
                                    choices=h.preset_names(s),
                                    value="Balanced",
                                    label="Preset",
                                    elem_id="preset",
                                    scale=2,
                                )
                                preset_name = gr.Textbox(label="Save as", scale=2)
                            with gr.Row():
                                save_preset = gr.Button("Save preset", size="sm")
                                delete_preset = gr.Button("Delete preset", size="sm")
                            build_preset_files(s, preset)  # studio: preset JSON files, sampler support
                            controls = build_controls()
                # studio: answer details, re-run exactly, next-token view (app/studio_panel.py)
                build_studio_panel(
                    s, conversation_id, controls, [chatbot, conversation_id, message, edit_mode]
                )
                build_compare_panel(s, chatbot=chatbot, conversation_id=conversation_id, controls=controls)
            with gr.Tab("Model"):
                _model_tab(s)
            with gr.Tab("Documents"):
                build_documents_panel(s)
            with gr.Tab("Images"):
                build_images_panel(s)
            with gr.Tab("Memory"):
                build_memory_panel(s)

        chat_outputs = [chatbot, conversation_id, message, edit_mode]
        refresh_list = partial(_refresh_list, s)
        for trigger in (send.click, message.submit):
            trigger(
                partial(h.respond_with_attachment, s),
                [
                    conversation_id,
                    message,
                    chatbot,
                    edit_mode,
                    system_prompt,
                    attachment,
                    labels,
                    chat_collections,
                    *controls,
                ],
                chat_outputs,
                concurrency_limit=4,
                concurrency_id="chat",
            ).then(refresh_list, [search, conversation_id], chats).then(lambda: None, None, attachment)
        regen.click(
            partial(h.regenerate, s),
            [conversation_id, *controls],
            chat_outputs,
            concurrency_limit=4,
            concurrency_id="chat",
        )
        stop.click(partial(h.stop, s), [conversation_id], None, concurrency_limit=None, queue=False)
        edit.click(partial(h.start_edit, s), [conversation_id], [message, edit_mode])

        demo.load(refresh_list, [search, conversation_id], chats)
        demo.load(None, js=ch.CLICK_JS)  # sources open the citation viewer
        chatbot.clear(lambda: (None, "", False), None, [conversation_id, message, edit_mode])
        chats.input(partial(h.open_conversation, s), [chats], [chatbot, conversation_id, system_prompt]).then(
            partial(h.conversation_collections, s), [conversation_id], chat_collections
        )
        chat_collections.focus(lambda: gr.Dropdown(choices=_collections(s)), None, chat_collections)
        chat_collections.input(
            partial(dh.set_conversation_collections, s), [conversation_id, chat_collections], collections_note
        )
        search.change(refresh_list, [search, conversation_id], chats)
        new_btn.click(
            lambda: ([], None, "", False, []),
            None,
            [chatbot, conversation_id, message, edit_mode, chat_collections],
        ).then(refresh_list, [search, conversation_id], chats)
        rename_btn.click(partial(h.rename_conversation, s), [conversation_id, title_box], None).then(
            refresh_list, [search, conversation_id], chats
        )
        delete_btn.click(partial(h.delete_conversation, s), [conversation_id], None).then(
            lambda: ([], None), None, [chatbot, conversation_id]
        ).then(refresh_list, [search, conversation_id], chats)
        system_prompt.blur(partial(h.set_system_prompt, s), [conversation_id, system_prompt], None)

        preset.input(partial(h.apply_preset, s), [preset], controls)
        save_preset.click(partial(_save_preset, s), [preset_name, *controls], preset)
        delete_preset.click(partial(_delete_preset, s), [preset], preset)
        wire_branches(
            s,
            demo,
            nav,
            files,
            chatbot=chatbot,
            conversation_id=conversation_id,
            system_prompt=system_prompt,
            refresh_list=refresh_list,
            list_io=([search, conversation_id], chats),
        )
    return demo


def _model_tab(s) -> None:
    settings = s.settings
    facts = gr.Markdown(mh.model_facts(s), elem_id="model-facts")
    with gr.Row():
        path = gr.Textbox(
            label="GGUF file path (or hf:OWNER/REPO/FILE.gguf)",
            scale=3,
            elem_id="model-path",
            value=s.models.info.path
            if s.models.info and s.models.info.backend != "remote"  # a remote model's path is its URL
            else (settings.model or ""),
        )
        upload = gr.File(label="…or upload a .gguf", file_types=[".gguf"], type="filepath", scale=2)
    with gr.Row():
        n_ctx = gr.Number(label="Context (n_ctx)", value=settings.n_ctx, precision=0)
        # text boxes: empty means "auto", which a number box cannot show (it shows 0, a real choice)
        n_gpu = gr.Textbox(
            label="GPU layers (-1 = all, empty = auto)",
            elem_id="model-gpu-layers",
            value="" if settings.n_gpu_layers is None else str(settings.n_gpu_layers),
        )
        n_threads = gr.Textbox(
            label="CPU threads (empty = auto)",
            elem_id="model-threads",
            value="" if settings.n_threads is None else str(settings.n_threads),
        )
        n_batch = gr.Number(label="Batch size", value=settings.n_batch, precision=0)
    with gr.Row():
        flash = gr.Checkbox(label="Flash attention", value=settings.flash_attn)
        cache_types = ["f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
        type_k = gr.Dropdown(cache_types, value=settings.type_k or "f16", label="K cache type")
        type_v = gr.Dropdown(cache_types, value=settings.type_v or "f16", label="V cache type")
        mmap = gr.Checkbox(label="mmap", value=settings.use_mmap)
        mlock = gr.Checkbox(label="mlock", value=settings.use_mlock)
    template = gr.Textbox(
        label="Chat template override (Jinja; empty = the model's own)",
        lines=3,
        value=settings.chat_template or "",
    )
    mmproj = gr.Textbox(
        label="Vision projector (mmproj GGUF) — lets a vision model see attached images; empty = text only",
        value=settings.mmproj or "",
        elem_id="model-mmproj",
    )
    load = gr.Button("Load / reload model", variant="primary", elem_id="load-model")
    status = gr.Markdown(elem_id="model-status")
    load.click(
        partial(mh.load_model, s),
        [
            path,
            upload,
            n_ctx,
            n_gpu,
            n_threads,
            n_batch,
            flash,
            type_k,
            type_v,
            mmap,
            mlock,
            template,
            mmproj,
        ],
        [facts, status],
        concurrency_limit=1,
    )
    _remote_server_box(s, facts, status)


def _remote_server_box(s, facts, status) -> None:
    """Connect to an OpenAI-compatible server instead; "Load / reload model" goes back to a local file."""
    settings = s.settings
    with gr.Accordion(
        "Remote model server (vLLM, llama.cpp server, Ollama …)", open=bool(settings.backend_url)
    ):
        with gr.Row():
            url = gr.Textbox(
                label="Server URL",
                value=settings.backend_url or "",
                scale=3,
                placeholder="http://gpu-box:8000",
                elem_id="remote-url",
            )
            key = gr.Textbox(
                label="API key (empty = none, or keep the current one)",
                type="password",
                scale=2,
                elem_id="remote-key",
            )
        with gr.Row():
            model = gr.Dropdown(
                mh.remote_models(s),
                value=settings.backend_model,
                label="Model (empty = first)",
                allow_custom_value=True,
                elem_id="remote-model",
            )
            n_ctx = gr.Number(
                label="Context if the server does not say",
                value=settings.backend_n_ctx,
                precision=0,
                elem_id="remote-n-ctx",
            )
        connect = gr.Button("Connect to server", elem_id="remote-connect")
    connect.click(
        partial(mh.connect_remote, s), [url, key, model, n_ctx], [facts, status], concurrency_limit=1
    ).then(lambda: gr.Dropdown(choices=mh.remote_models(s)), None, model)


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
