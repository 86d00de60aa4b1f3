"""End to end with the real chat model: upload through the page's handler, ask, get sources."""

from __future__ import annotations

import json
import shutil

import pytest
from test_rag_support import open_services

import cli
from app import documents_handlers as dh
from engine import GenerationConfig
from engine.types import Done, Sources

MANUAL = (
    "# Heron 7 dishwasher manual\n\n"
    "## Error codes\n\n"
    "Error E-47 means the drain filter is blocked. Remove the filter, rinse it under warm water, "
    "and restart the Heron 7.\n\n"
    "## Detergent\n\nUse one tablet per cycle; never use washing-up liquid.\n"
)


@pytest.fixture(scope="module")
def full_services(tmp_path_factory):
    yield from open_services(tmp_path_factory, load_model=True)


def upload_like_gradio(tmp_path, name: str, text: str):
    """Gradio hands the handler a temp path whose last part is the original file name."""
    folder = tmp_path / "gradio" / "3f9c2a"
    folder.mkdir(parents=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_upload_through_the_handler_then_ask_cites_the_file(full_services, tmp_path):
    s = full_services
    ticks = []
    report = dh.upload(
        s,
        [str(upload_like_gradio(tmp_path, "heron7-manual.md", MANUAL))],
        "library",
        progress=lambda done, total, name: ticks.append((done, total)),
    )
    assert "1 added" in report and ticks[-1] == (1, 1)
    shutil.rmtree(tmp_path / "gradio")  # Gradio cleans its temp files; the index must not need them
    assert "heron7-manual.md" in [row[0] for row in dh.documents_table(s, "library")]

    events = list(
        s.chat.stream_turn(
            None,
            "What does error E-47 mean on the Heron 7?",
            GenerationConfig(temperature=0.0, max_tokens=48),
        )
    )
    sources = [h for h in next(e for e in events if isinstance(e, Sources)).hits if h.kind == "chunk"]
    done = next(e for e in events if isinstance(e, Done))
    assert sources and sources[0].source == "heron7-manual.md" and "E-47" in sources[0].text
    assert done.text.strip()
    saved = [h for h in s.conversations.message(done.message_id).sources if h["kind"] == "chunk"]
    assert saved and saved[0]["source"] == "heron7-manual.md" and saved[0]["page"] is None

    page = dh.search(s, "E-47 drain filter", "library", 3)
    assert "heron7-manual.md" in page and "<details>" in page and "Error E-47" in page
    assert "<script" not in dh.search(s, "<script>alert(1)</script>", "library", 1)


def test_ask_command_answers_with_sources(full_services, capsys):
    data_dir = full_services.settings.data_dir
    code = cli.main(
        [
            "--data-dir",
            str(data_dir),
            "ask",
            "Which detergent should the Heron 7 use?",
            "--json",
            "--max-tokens",
            "32",
            "--temperature",
            "0",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["answer"].strip()
    assert out["sources"] and out["sources"][0]["source"] == "heron7-manual.md"


def test_retrieved_text_is_quoted_as_data_in_the_prompt(full_services):
    from engine.prompt import build_messages

    hit = full_services.documents.search("E-47", k=1)[0]
    plan = build_messages(
        system_prompt="sys",
        user_message="q",
        references=[hit],
        count_tokens=full_services.models.backend.count_tokens,
        budget=1500,
    )
    user = plan.messages[-1].content
    assert "never follow" in user and '<reference id="1" source="heron7-manual.md"' in user
    assert plan.cited == [hit]


def test_the_documents_panel_builds(full_services):
    import gradio as gr

    from app.documents_panel import build_documents_panel

    with gr.Blocks() as demo:
        with gr.Tab("Documents"):
            build_documents_panel(full_services, demo)
    ids = {getattr(c, "elem_id", None) for c in demo.blocks.values()}
    assert {"docs-upload", "docs-table", "docs-query", "docs-results", "docs-delete"} <= ids
