"""The studio's behaviour, as plain functions: answer details (provenance), re-run exactly, the
next-token view, and preset files. Tests call these without a browser; studio_panel wires them."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path
from typing import Any

from engine.config import GenerationConfig
from engine.errors import EngineError
from engine.studio.chain_view import PositionView
from engine.studio.service import AnswerTokens

from .controls import control_values
from .handlers import friendly
from .markup import escape_inline

#: the sliders the next-token view offers (GenerationConfig fields, same ranges)
VIEW_FIELDS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty")
#: candidates listed per stage
SHOWN = 12


def answer_choices(services, conversation_id: str | None) -> list[tuple[str, str]]:
    """The conversation's answers, newest first: (label, message id)."""
    if not conversation_id:
        return []
    answers = [m for m in services.conversations.messages(conversation_id) if m.role == "assistant"]
    return [(f"#{m.seq}: {' '.join(m.content.split())[:50]}", m.id) for m in reversed(answers)]


def details(services, message_id: str | None) -> str:
    """Markdown: where the answer came from (settings, seed, model and template hashes, version)."""
    if not message_id:
        return "Pick an answer."
    try:
        message = services.conversations.message(message_id)
        found = services.studio.details(message_id)
    except EngineError as e:
        return friendly(e)
    config = message.config or {}
    rows = [("model", escape_inline(message.model or "?"))]
    if found is None:
        rows.append(("provenance", "not recorded (an answer from before Hearth recorded it)"))
    else:
        rows += [
            ("model file", escape_inline(Path(found.model_path).name)),
            ("model sha256", found.model_sha256 or "still being computed"),
            ("chat template sha256", found.template_sha256 or "not known (remote server)"),
            ("seed used", str(found.seed)),
            ("Hearth version", found.hearth_version),
        ]
    changed = {
        k: v for k, v in config.items() if k in GenerationConfig.__dataclass_fields__ and v != _default(k)
    }
    settings = ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"
    rows.append(("settings (not default)", escape_inline(settings)))
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _default(name: str) -> Any:
    return GenerationConfig().to_dict()[name]


def rerun_values(services, message_id: str | None) -> list:
    """The controls set to exactly what produced the answer (its seed included)."""
    if not message_id:
        raise ValueError("Pick an answer first.")
    message = services.conversations.message(message_id)
    if not message.config:
        raise ValueError("That answer has no recorded settings.")
    latest = services.conversations.messages(message.conversation_id)[-1]
    if latest.id != message.id:  # regenerate answers the last question only
        raise ValueError("Re-run exactly works on the conversation's latest answer; pick that one.")
    return control_values(GenerationConfig.from_values(message.config))


def open_answer(
    services, message_id: str | None
) -> tuple[list[tuple[str, str | None]], AnswerTokens | None, list, str]:
    """The answer as clickable tokens, its trace, the view's sliders at its settings, and a note."""
    none: list = [None] * len(VIEW_FIELDS)
    if not message_id:
        return [], None, none, "Pick an answer."
    try:
        message = services.conversations.message(message_id)
        config = GenerationConfig.from_values(message.config or {})
        tokens = services.studio.answer_tokens(message_id, config)
    except EngineError as e:
        return [], None, none, friendly(e)
    spans: list[tuple[str, str | None]] = [(_shown(piece), None) for piece in tokens.pieces]
    values = [getattr(config, name) for name in VIEW_FIELDS]
    return spans, tokens, values, f"{len(tokens.pieces)} tokens: click one to see its candidates."


def _shown(piece: str) -> str:
    """A token as one clickable span: the page splits text at line breaks, so a newline token
    would lose its span (and shift every index after it); an empty piece would have none."""
    return piece.replace("\r", "␍").replace("\n", "↵") or "∅"


def view(services, tokens: AnswerTokens | None, index: int | None, *sliders: Any) -> str:
    """HTML tables: the candidates at token ``index`` after each stage of the chain."""
    if tokens is None or index is None:
        return ""
    try:
        values = {**tokens.config.to_dict(), **dict(zip(VIEW_FIELDS, sliders, strict=True))}
        config = GenerationConfig.from_values(values)
        position = services.studio.position(tokens, int(index), config)
        return render_position(services, tokens, position)
    except EngineError as e:
        return f'<p class="studio-error">⚠️ {html.escape(str(e))}</p>'


def render_position(services, tokens: AnswerTokens, position: PositionView) -> str:
    ids = {t for stage in position.stages for t, _ in stage.kept[:SHOWN]} | {position.drawn}
    ids |= {t for stage in position.stages for t in stage.removed[:SHOWN]}
    order = sorted(ids)
    text = dict(zip(order, services.studio.token_pieces(order), strict=True))

    def tok(t: int) -> str:
        return f"<code>{html.escape(repr(text.get(t, '?')))}</code>"

    drawn = f"drawn: {tok(position.drawn)} (p = {position.drawn_p:.4f} with these settings"
    drawn += ", which would remove it)" if position.drawn_p == 0 else ")"
    parts = [f'<p id="studio-drawn">token {position.index + 1}: {drawn}</p>']
    for stage in position.stages:
        rows = "".join(
            f'<tr class="{"drawn" if t == position.drawn else ""}"><td>{tok(t)}</td><td>{t}</td><td>{p:.4f}</td></tr>'
            for t, p in stage.kept[:SHOWN]
        )
        more = len(stage.kept) - SHOWN
        rest = f"; rest of the vocabulary {stage.rest:.4f}" if stage.rest is not None else ""
        removed = ", ".join(tok(t) for t in stage.removed[:SHOWN]) + (
            " …" if len(stage.removed) > SHOWN else ""
        )
        parts.append(
            f'<details open class="studio-stage" data-stage="{stage.name}"><summary><b>{html.escape(stage.label)}</b>: '
            f'<span class="kept">{len(stage.kept)}</span> candidate(s){rest}'
            + (f"; {html.escape(stage.note)}" if stage.note else "")
            + "</summary>"
            + f"<table><tr><th>token</th><th>id</th><th>p</th></tr>{rows}</table>"
            + (f"<p>… and {more} more</p>" if more > 0 else "")
            + (f"<p>removed: {removed}</p>" if stage.removed else "")
            + "</details>"
        )
    return "\n".join(parts)


# preset files


def export_preset(services, name: str | None) -> str:
    """Write the preset to a temporary JSON file; returns its path for the download."""
    text = services.presets.export(name or "")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in (name or "preset")).strip("-") or "preset"
    folder = Path(tempfile.mkdtemp(prefix="hearth-preset-"))
    path = folder / f"{safe}.json"
    path.write_text(text, encoding="utf-8")
    return str(path)


def import_preset(services, path: str | None) -> tuple[list[str], str, str]:
    """Save the preset in an uploaded file; returns (preset names, chosen name, status)."""
    if not path:
        return services.presets.names(), "", ""
    try:
        name = services.presets.import_file(Path(path).read_bytes())
    except EngineError as e:
        return services.presets.names(), "", friendly(e) + " Nothing was saved."
    except OSError as e:
        return services.presets.names(), "", f"⚠️ Could not read the file ({e.strerror}). Nothing was saved."
    return services.presets.names(), name, f"✅ Imported preset {escape_inline(name)}."


def unsupported_note(services) -> str:
    """Which settings the loaded backend cannot apply, for the settings panel."""
    if services.models.info is None:
        return ""
    ignored = services.models.backend.ignored_settings
    if not ignored:
        return "Every setting here reaches the model (image turns use the stock chain: no DRY, XTC, top-n-sigma, dynamic temperature or sampler order)."
    return "This model server ignores: " + ", ".join(escape_inline(n) for n in ignored) + "."
