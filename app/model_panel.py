"""The Model tab: what is loaded, loading a GGUF with its options, or connecting to a server."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from engine.settings import AUTO_ON_OFF, auto_on_off_word

from . import model_handlers as mh

if TYPE_CHECKING:
    from engine.factory import Services
    from engine.settings import Settings


def build_model_panel(s: Services) -> None:
    facts = gr.Markdown(mh.model_facts(s), elem_id="model-facts")
    options = _load_options(s)
    load = gr.Button("Load / reload model", variant="primary", elem_id="load-model")
    status = gr.Markdown(elem_id="model-status")
    load.click(partial(mh.load_model, s), options, [facts, status], concurrency_limit=1)
    _remote_server_box(s, facts, status)


def _load_options(s: Services) -> list[gr.components.Component]:
    """The load settings' inputs, in the order ``model_handlers.load_model`` takes them."""
    settings = s.settings
    files = _model_file_row(s)
    sizes = _size_row(settings)
    memory = _memory_row(settings)
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
    return [*files, *sizes, *memory, template, mmproj]


def _model_file_row(s: Services) -> list[gr.components.Component]:
    """The GGUF path and an upload box."""
    with gr.Row():
        path = gr.Textbox(
            label="GGUF file path (or hf:OWNER/REPO/FILE.gguf)",
            scale=3,
            elem_id="model-path",
            value=s.models.info.path
            if s.models.info and s.models.info.backend != "remote"  # a remote model's path is its URL
            else (s.settings.model or ""),
        )
        upload = gr.File(label="…or upload a .gguf", file_types=[".gguf"], type="filepath", scale=2)
    return [path, upload]


def _size_row(settings: Settings) -> list[gr.components.Component]:
    """Context, GPU layers, CPU threads and batch size."""
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
        n_batch = gr.Number(label="Batch size (0 = auto)", value=settings.n_batch, precision=0)
    return [n_ctx, n_gpu, n_threads, n_batch]


def _memory_row(settings: Settings) -> list[gr.components.Component]:
    """Flash attention, the KV cache's types, mmap and mlock."""
    with gr.Row():
        flash = gr.Dropdown(
            list(AUTO_ON_OFF),
            value=auto_on_off_word(settings.flash_attn),
            label="Flash attention (auto: on a GPU; on a CPU, the faster here)",
            elem_id="model-flash-attn",
        )
        cache_types = ["f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
        type_k = gr.Dropdown(cache_types, value=settings.type_k or "f16", label="K cache type")
        type_v = gr.Dropdown(cache_types, value=settings.type_v or "f16", label="V cache type")
        mmap = gr.Checkbox(label="mmap", value=settings.use_mmap)
        mlock = gr.Checkbox(label="mlock", value=settings.use_mlock)
    return [flash, type_k, type_v, mmap, mlock]


def _remote_server_box(s: Services, facts: Any, status: Any) -> None:
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
