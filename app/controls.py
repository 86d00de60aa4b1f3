"""Generation-setting inputs generated from GenerationConfig's field metadata."""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

from engine.config import GenerationConfig

#: the order in which control values reach the handlers
CONTROL_FIELDS: list[str] = [f.name for f in dataclasses.fields(GenerationConfig)]

#: fields typed as text: how a value is written in its box
_TEXT_FIELDS = ("stop", "logit_bias", "samplers")


def _as_text(name: str, value: Any) -> str:
    if name == "stop":
        return "\n".join(s.replace("\n", "\\n") for s in value)
    if name == "logit_bias":
        return ", ".join(f"{token}:{bias:g}" for token, bias in value)
    return ", ".join(value)


def control_values(config: GenerationConfig) -> list:
    """Values for the controls, in CONTROL_FIELDS order (text fields as their boxes show them)."""
    return [
        _as_text(name, getattr(config, name)) if name in _TEXT_FIELDS else getattr(config, name)
        for name in CONTROL_FIELDS
    ]


def _control(f: dataclasses.Field, value: Any) -> gr.components.Component:
    meta = f.metadata
    if f.name in _TEXT_FIELDS:
        info = meta["help"] + (" One per line; \\n = newline." if f.name == "stop" else "")
        return gr.Textbox(
            label=meta["label"],
            info=info,
            value=_as_text(f.name, value),
            lines=2 if f.name == "stop" else 1,
            elem_id=f"ctl-{f.name}",
        )
    if f.name == "seed":
        return gr.Number(label=meta["label"], info=meta["help"], value=value, precision=0, elem_id="ctl-seed")
    if f.name == "mirostat_mode":
        return gr.Radio(
            choices=[0, 1, 2],
            value=value,
            label=meta["label"],
            info=meta["help"],
            elem_id="ctl-mirostat_mode",
        )
    hi = min(meta["max"], 8192) if f.name == "max_tokens" else meta["max"]
    return gr.Slider(
        minimum=meta["min"],
        maximum=hi,
        step=meta["step"],
        value=value,
        label=meta["label"],
        info=meta["help"],
        elem_id=f"ctl-{f.name}",
    )


def build_controls(config: GenerationConfig | None = None) -> list[gr.components.Component]:
    """One input per GenerationConfig field, in CONTROL_FIELDS order."""
    config = config or GenerationConfig()
    return [_control(f, getattr(config, f.name)) for f in dataclasses.fields(GenerationConfig)]
