"""Compare (side by side) on the real bundled model: seeded columns are reproducible, every
column is a sibling branch, and a compare waits visibly behind an answer that is streaming."""

from __future__ import annotations

import threading

import pytest
from conftest import run_turn

from app import compare_handlers as ch
from app.controls import control_values
from engine import ConfigError, GenerationConfig, Settings, build
from engine.compare import CompareColumn, answers, compare_turn, seeded
from engine.types import TextDelta

SHORT = GenerationConfig(temperature=0.0, max_tokens=8)


@pytest.fixture
def quiet(tmp_path):
    """Memory off: recall would make the second prompt differ from the first."""
    services = build(Settings(data_dir=tmp_path / "data", n_ctx=2048, memory=False))
    yield services
    services.close()


def test_a_compare_column_equals_a_single_run_with_the_same_seed(quiet):
    done, _ = run_turn(quiet, "Write one sentence about rivers.", SHORT)
    cid = done.conversation_id
    warm = GenerationConfig(temperature=1.0, top_k=80, seed=1234, max_tokens=16)
    creative = quiet.presets.get("Creative").replace(seed=99, max_tokens=16)
    columns = [CompareColumn(label="warm", config=warm), CompareColumn(label="Creative", config=creative)]
    events = list(compare_turn(quiet.chat, cid, columns))
    got = answers(events)
    assert sorted(got) == [0, 1] and all(d.usage.completion_tokens > 0 for d in got.values())
    streamed = "".join(e.event.text for e in events if e.column == 0 and isinstance(e.event, TextDelta))
    assert streamed == got[0].text

    siblings = quiet.branches.siblings(got[0].message_id)
    assert len(siblings) == 3 and siblings[1].config["seed"] == 1234 and siblings[2].config["seed"] == 99

    _, single = run_turn(quiet, "", warm, conversation_id=cid, mode="regenerate")
    assert single == got[0].text
    _, other = run_turn(quiet, "", creative, conversation_id=cid, mode="regenerate")
    assert other == got[1].text


def test_random_seeds_are_drawn_up_front_and_shown(quiet):
    columns = seeded([CompareColumn(label="a", config=GenerationConfig(seed=-1))] * 2)
    assert all(c.config.seed >= 0 for c in columns)
    assert f"seed {columns[0].config.seed}" in ch.heading(columns[0])
    with pytest.raises(ConfigError):
        list(compare_turn(quiet.chat, "x", columns[:1]))


def test_compare_waits_visibly_behind_a_streaming_answer_then_runs(quiet):
    done, _ = run_turn(quiet, "Name a tree.", SHORT)
    cid = done.conversation_id
    other = quiet.chat.stream_turn(
        None, "Count from 1 to 50.", GenerationConfig(temperature=0.0, max_tokens=40)
    )
    for event in other:  # the other answer holds the model while it is paused mid-stream
        if isinstance(event, TextDelta):
            break
    views: list[tuple] = []
    seen_queued = threading.Event()

    def compare():
        choices, seeds = [ch.CURRENT, ch.CURRENT, ch.OFF], [5, 6, None]
        controls = control_values(SHORT)
        for view in ch.run_compare(quiet, cid, choices, seeds, *controls):
            views.append(view)
            if "queued" in view[0]:
                seen_queued.set()

    worker = threading.Thread(target=compare)
    worker.start()
    assert seen_queued.wait(timeout=120)
    assert quiet.chat.running_turns() == 1 and not any("tok/s" in v[0] for v in views)
    rest = [e for e in other]  # the streaming answer finishes; the compare goes on
    worker.join(timeout=300)
    assert not worker.is_alive() and rest
    last = views[-1]
    assert "seed 5" in last[0] and "seed 6" in last[1] and "tok/s" in last[0] and "tok/s" in last[1]
    assert len([i for i in last[3] if i]) == 2
    history, note = ch.keep(quiet, cid, last[3], 1)
    assert quiet.conversations.messages(cid)[-1].id == last[3][1] and "Kept answer 2" in note


def test_the_columns_are_shown_a_few_times_a_second_not_per_token(quiet, monkeypatch):
    """As the chat: every shown update makes the browser render the columns again."""
    from app import page_updates

    done, _ = run_turn(quiet, "Write one sentence about rivers.", SHORT)
    values = control_values(GenerationConfig(temperature=0.0, max_tokens=30))
    choices, seeds = [ch.CURRENT, ch.CURRENT, ch.OFF], [5, 6, None]
    monkeypatch.setattr(page_updates, "PAGE_UPDATE_S", 3600.0)  # each column: its first text, then its end
    few = list(ch.run_compare(quiet, done.conversation_id, choices, seeds, *values))
    monkeypatch.setattr(page_updates, "PAGE_UPDATE_S", 0.0)  # every token
    many = list(ch.run_compare(quiet, done.conversation_id, choices, seeds, *values))

    def shown(view):  # each column's answer, after its heading (whose tok/s differ)
        return [column.split("</small>")[1] for column in view[:2]]

    assert shown(few[-1]) == shown(many[-1])  # the same answers in the end
    assert "tok/s" in few[-1][1] and len(many) > len(few) + 20
