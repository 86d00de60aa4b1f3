"""Branches and Compare in a real browser (Debian's Chromium), the real model behind the page."""

from __future__ import annotations

import json

import pytest
from page_support import new_chat, send, serve_page, set_number

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_page(tmp_path_factory.mktemp("branches-page"), memory=False) as served:
        yield served


@pytest.fixture
def page_height() -> int:
    return 1100


def _three_answers(services, title: str) -> tuple[str, list[str]]:
    conv = services.conversations.create(title=title)
    services.conversations.add_message(conv.id, "user", "Pick a number.")
    ids = []
    for text in ("Answer one", "Answer two", "Answer <b>three</b> [x](javascript:alert(1))"):
        if ids:
            services.conversations.deactivate([ids[-1]])
        ids.append(services.conversations.add_message(conv.id, "assistant", text).id)
    return conv.id, ids


def _open(page, title: str) -> None:
    page.get_by_text(title).first.click()
    page.wait_for_selector("#hearth-chat .hearth-branch-count", timeout=30_000)


def _count(page) -> str:
    return page.inner_text("#hearth-chat .bot-row .hearth-branch-count")


def test_arrows_switch_the_answer_and_survive_a_reload(page, server):
    services, _ = server
    cid, ids = _three_answers(services, "arrows chat")
    page.reload()
    _open(page, "arrows chat")
    assert _count(page) == "3/3" and "three" in page.inner_text("#hearth-chat")
    assert page.locator("#hearth-chat b").count() == 0  # the answer's markup stayed text

    page.locator("#hearth-chat .bot-row .hearth-branch-btn[title='Previous version']").click()
    page.wait_for_function("document.querySelector('#hearth-chat').innerText.includes('Answer two')")
    page.wait_for_function(
        "document.querySelector('#hearth-chat .bot-row .hearth-branch-count')?.textContent === '2/3'"
    )
    assert services.conversations.messages(cid)[-1].id == ids[1]  # saved: the next prompt follows it

    page.reload()
    _open(page, "arrows chat")
    assert _count(page) == "2/3" and "Answer two" in page.inner_text("#hearth-chat")
    page.locator("#hearth-chat .bot-row .hearth-branch-btn[title='Previous version']").click()
    page.wait_for_function("document.querySelector('#hearth-chat').innerText.includes('Answer one')")
    assert services.conversations.messages(cid)[-1].id == ids[0]


def test_fork_from_a_message_opens_a_copy(page, server):
    services, _ = server
    cid, ids = _three_answers(services, "fork source")
    page.reload()
    _open(page, "fork source")
    before = {c.id for c in services.conversations.list()}
    page.locator("#hearth-chat .user-row .hearth-branch-btn[title='Fork a new chat from here']").click()
    page.wait_for_selector("#chat-list >> text=Fork of fork source", timeout=30_000)
    [forked] = [c for c in services.conversations.list() if c.id not in before]
    assert [m.content for m in services.conversations.messages(forked.id)] == ["Pick a number."]
    assert len(services.conversations.messages(cid, include_inactive=True)) == 4


def test_export_then_import_on_the_page(page, server, tmp_path):
    services, _ = server
    cid, _ids = _three_answers(services, "to export")
    page.reload()
    _open(page, "to export")
    page.get_by_text("⇅ Export / import").click()
    with page.expect_download() as download:
        page.click("#export-json")
        page.wait_for_selector("#files-note >> text=Exported", timeout=30_000)
        page.locator("#export-file a").first.click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    assert json.loads(saved.read_text()) == services.branches.export_json(cid)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(saved.read_text()), "version": 99}))
    count = len(services.conversations.list())
    page.locator("#import-file input[type=file]").set_input_files(str(bad))
    page.wait_for_selector("#files-note >> text=newer Hearth", timeout=30_000)
    assert len(services.conversations.list()) == count

    page.locator("#import-file button[aria-label='Clear']").first.click()
    page.locator("#import-file input[type=file]").set_input_files(str(saved))
    page.wait_for_selector("#files-note >> text=Imported", timeout=30_000)
    page.wait_for_function(
        "document.querySelector('#hearth-chat .bot-row .hearth-branch-count')?.textContent === '3/3'"
    )
    assert len(services.conversations.list()) == count + 1


def test_compare_shows_columns_and_keeping_one_makes_it_the_answer(page, server):
    services, _ = server
    new_chat(page)
    set_number(page, "ctl-max_tokens", "12")
    send(page, "Name a fruit.")
    cid = services.conversations.list()[0].id
    page.get_by_text("⚖️ Compare side by side").click()
    page.locator("#compare-pick-2 input").fill("(current settings)")
    page.locator("#compare-pick-2 input").press("Enter")
    set_number(page, "compare-seed-1", "11")
    set_number(page, "compare-seed-2", "22")
    page.click("#compare-run")
    page.wait_for_selector("#compare-col-2 >> text=tok/s", timeout=180_000)
    first, second = page.inner_text("#compare-col-1"), page.inner_text("#compare-col-2")
    assert "seed 11" in first and "seed 22" in second and "tokens" in first
    answers = [
        m for m in services.conversations.messages(cid, include_inactive=True) if m.role == "assistant"
    ]
    assert len(answers) == 3 and [a.config["seed"] for a in answers[1:]] == [11, 22]

    page.click("#compare-keep-1")
    page.wait_for_selector("#compare-note >> text=Kept answer 1", timeout=30_000)
    assert services.conversations.messages(cid)[-1].id == answers[1].id
    word = max(answers[1].content.split() or [""], key=len).strip("*_#.,:;!?()")
    page.wait_for_function(
        "document.querySelector('#hearth-chat .bot-row .hearth-branch-count')?.textContent === '2/3'"
    )
    assert word in page.inner_text("#hearth-chat")
