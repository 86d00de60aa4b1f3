"""Generation-setting inputs generated from GenerationConfig's field metadata."""

from __future__ import annotations

import dataclasses

import gradio as gr

from engine.config import GenerationConfig

#: the order in which control values reach the handlers
CONTROL_FIELDS: list[str] = [f.name for f in dataclasses.fields(GenerationConfig)]


def control_values(config: GenerationConfig) -> list:
    """Values for the controls, in CONTROL_FIELDS order (stop strings one per line)."""
    values = []
    for name in CONTROL_FIELDS:
        value = getattr(config, name)
        values.append("\n".join(s.replace("\n", "\\n") for s in value) if name == "stop" else value)
    return values


def build_controls(config: GenerationConfig | None = None) -> list[gr.components.Component]:
    """One input per GenerationConfig field, in CONTROL_FIELDS order."""
    config = config or GenerationConfig()
    controls: list[gr.components.Component] = []
    for f in dataclasses.fields(GenerationConfig):
        meta, value = f.metadata, getattr(config, f.name)
        if f.name == "stop":
            controls.append(
                gr.Textbox(
                    label=meta["label"],
                    info=meta["help"] + " One per line; \\n = newline.",
                    value="\n".join(value),
                    lines=2,
                    elem_id="ctl-stop",
                )
            )
        elif f.name == "seed":
            controls.append(
                gr.Number(
                    label=meta["label"], info=meta["help"], value=value, precision=0, elem_id="ctl-seed"
                )
            )
        elif f.name == "mirostat_mode":
            controls.append(
                gr.Radio(
                    choices=[0, 1, 2],
                    value=value,
                    label=meta["label"],
                    info=meta["help"],
                    elem_id="ctl-mirostat_mode",
                )
            )
        else:
            hi = min(meta["max"], 8192) if f.name == "max_tokens" else meta["max"]
            controls.append(
                gr.Slider(
                    minimum=meta["min"],
                    maximum=hi,
                    step=meta["step"],
                    value=value,
                    label=meta["label"],
                    info=meta["help"],
                    elem_id=f"ctl-{f.name}",
                )
            )
    return controls
