"""The studio's page parts: layout and wiring only; behaviour lives in studio_handlers.

``build_studio_panel`` goes under the chat (answer details, re-run exactly, the next-token view);
``build_preset_files`` next to the preset picker (export / import JSON).
"""

from __future__ import annotations

from functools import partial

import gradio as gr

from engine.config import GenerationConfig

from . import handlers as h
from . import studio_handlers as sh


def build_studio_panel(
    s, conversation_id: gr.State, controls: list, chat_outputs: list, *, browser_here: bool = True
) -> None:
    """Called inside the chat column. ``controls`` are the generation settings (re-run sets them);
    ``browser_here`` as for the chat's own turns (app.ui.build_ui)."""
    with gr.Accordion("🔬 Studio: answer details and next-token view", open=False, elem_id="studio"):
        with gr.Row():
            answer = gr.Dropdown(choices=[], label="Answer", scale=4, elem_id="studio-answer")
            pick = gr.Button("Inspect the latest answer", size="sm", scale=1, elem_id="studio-pick")
        details = gr.Markdown(elem_id="studio-details")
        rerun = gr.Button("↻ Re-run exactly (same settings and seed)", size="sm", elem_id="studio-rerun")
        note = gr.Markdown(elem_id="studio-note")
        tokens_view = gr.HighlightedText(
            label="Tokens (click one)", show_legend=False, combine_adjacent=False, elem_id="studio-tokens"
        )
        sliders = _view_sliders()
        table = gr.HTML(elem_id="studio-view")
        tokens_state: gr.State = gr.State(None)
        index_state: gr.State = gr.State(None)

    choose = partial(_choose_latest, s)
    pick.click(choose, [conversation_id], [answer]).then(
        partial(_open, s), [answer], [details, tokens_view, tokens_state, *sliders, note, index_state, table]
    )
    answer.input(
        partial(_open, s), [answer], [details, tokens_view, tokens_state, *sliders, note, index_state, table]
    )
    tokens_view.select(_selector(s), [tokens_state, *sliders], [index_state, table])
    for slider in sliders:
        slider.change(partial(sh.view, s), [tokens_state, index_state, *sliders], [table])
    rerun.click(partial(_rerun_values, s), [answer], controls).then(
        partial(h.regenerate, s, spare_core=browser_here),
        [conversation_id, *controls],
        chat_outputs,
        concurrency_limit=4,
        concurrency_id="chat",
    )


def _view_sliders() -> list[gr.Slider]:
    fields = {f.name: f for f in GenerationConfig.numeric_fields()}
    with gr.Row():
        return [
            gr.Slider(
                minimum=fields[name].metadata["min"],
                maximum=fields[name].metadata["max"],
                step=fields[name].metadata["step"],
                value=getattr(GenerationConfig(), name),
                label=fields[name].metadata["label"] + " (view)",
                elem_id=f"studio-{name}",
            )
            for name in sh.VIEW_FIELDS
        ]


def _choose_latest(s, conversation_id: str | None):
    choices = sh.answer_choices(s, conversation_id)
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


def _open(s, message_id: str | None):
    spans, tokens, values, note = sh.open_answer(s, message_id)
    sliders = [gr.Slider() if v is None else gr.Slider(value=v) for v in values]
    return (sh.details(s, message_id), spans, tokens, *sliders, note, None, "")


def _selector(s):
    """The token-click handler: Gradio passes the click as ``evt`` by its annotation, which it reads
    from a plain function (not a partial), so the view's six sliders are named here."""

    def select(tokens, temperature, top_k, top_p, min_p, typical_p, repeat_penalty, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else (evt.index[0] if evt.index else None)
        sliders = (temperature, top_k, top_p, min_p, typical_p, repeat_penalty)
        return index, sh.view(s, tokens, index, *sliders)

    return select


def _rerun_values(s, message_id: str | None) -> list:
    try:
        return sh.rerun_values(s, message_id)
    except Exception as e:  # noqa: BLE001 - shown to the user; the re-run does not start
        raise gr.Error(str(e)) from e


def build_preset_files(s, preset: gr.Dropdown) -> None:
    """Export the chosen preset / import one from a JSON file; placed under the preset picker."""
    gr.Markdown(partial(sh.unsupported_note, s), elem_id="sampler-support")
    with gr.Row():
        export = gr.DownloadButton(
            "⬇ Export preset", value=partial(_export_file, s, "Balanced"), size="sm", elem_id="preset-export"
        )
        upload = gr.UploadButton("⬆ Import preset", file_types=[".json"], size="sm", elem_id="preset-import")
    status = gr.Markdown(elem_id="preset-status")
    preset.change(partial(_export_path, s), [preset], [export])
    upload.upload(partial(_import, s), [upload], [preset, status])


def _export_file(s, name: str | None) -> str | None:
    try:
        return sh.export_preset(s, name)
    except Exception:  # noqa: BLE001 - no file for a preset that does not exist (yet)
        return None


def _export_path(s, name: str | None):
    return gr.DownloadButton(value=_export_file(s, name))


def _import(s, path: str | None):
    names, chosen, status = sh.import_preset(s, path)
    return gr.Dropdown(choices=names, value=chosen or None) if chosen else gr.Dropdown(choices=names), status
