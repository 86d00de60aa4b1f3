"""The page in a real browser: Debian's Chromium driven by Playwright, the real model behind it."""

from __future__ import annotations

import pytest
from page_support import EMPTY_CHAT, new_chat, open_page, send, serve_page, set_number

from engine.turn import Turn

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory):
    """Memory off: recall from other chats would change the prompt, and so the answer's length."""
    with serve_page(tmp_path_factory.mktemp("quiet"), memory=False) as served:
        yield served


def test_one_full_chat_and_a_slider_that_changes_the_answer(server, page):
    services, _ = server
    set_number(page, "ctl-temperature", "0")  # greedy: a sampled answer can end within 3 tokens
    send(page, "Tell me about the moon.")
    conv = services.conversations.list()[0]
    first = services.conversations.messages(conv.id)[-1]
    assert first.role == "assistant" and first.content.strip()
    assert first.completion_tokens > 3
    word = max((w.strip("*_#.,:;!?()") for w in first.content.split()[:12]), key=len)
    assert word in page.inner_text("#hearth-chat")
    page.wait_for_selector("#chat-list >> text=Tell me about the moon.", timeout=30_000)

    set_number(page, "ctl-max_tokens", "3")
    send(page, "Tell me about the sun.")
    second = services.conversations.messages(conv.id)[-1]
    assert second.completion_tokens == 3 and second.config["max_tokens"] == 3
    assert second.finish_reason == "length"
    assert "hit max tokens" in page.inner_text("#hearth-chat")
    page.screenshot(path=str(services.settings.data_dir / "chat.png"))


def test_model_output_never_runs_html_or_script(server, page):
    services, _ = server
    conv = services.conversations.create(title="hostile")
    services.conversations.add_message(conv.id, "user", "<img src=x onerror=\"window.__xss='user'\">hi")
    services.conversations.add_message(
        conv.id,
        "assistant",
        "<script>window.__xss='script'</script><img src=x onerror=\"window.__xss='img'\">"
        "<a href=\"javascript:window.__xss='link'\">click</a>\n\n**bold** and `code`",
    )
    page.reload()
    page.wait_for_selector("#chat-list")
    page.get_by_text("hostile").click()
    page.wait_for_function(
        "document.querySelector('#hearth-chat').innerText.includes('bold')", timeout=30_000
    )
    for link in page.locator("#hearth-chat a").all():
        if "click" in link.inner_text():
            link.click(no_wait_after=True)
    page.wait_for_timeout(500)
    assert page.evaluate("window.__xss") is None
    dangerous = page.evaluate(
        """() => {
        const root = document.querySelector('#hearth-chat');
        return {
          scripts: root.querySelectorAll('script').length,
          handlers: [...root.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
          jsLinks: [...root.querySelectorAll('a')].filter(a => (a.getAttribute('href') || '').trim().toLowerCase().startsWith('javascript:')).length,
        };
      }"""
    )
    assert dangerous == {"scripts": 0, "handlers": 0, "jsLinks": 0}
    assert page.locator("#hearth-chat strong").count() >= 1  # markdown still renders


def test_upload_a_document_on_the_page_then_the_answer_cites_it(server, page, tmp_path):
    services, _ = server
    doc = tmp_path / "heron-manual.md"
    doc.write_text("# Heron pump\n\nThe HX-9931 heron pump must be primed with 3 litres of rainwater.\n")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#docs-upload input[type=file]").set_input_files(str(doc))
    page.wait_for_timeout(1000)  # the upload reaches the server before the button is pressed
    page.click("#docs-add")
    page.wait_for_selector("#docs-added >> text=heron-manual.md", timeout=120_000)
    assert [d.name for d in services.documents.documents()] == ["heron-manual.md"]

    page.get_by_role("tab", name="Chat").click()
    new_chat(page)
    send(page, "How is the HX-9931 heron pump primed?")
    page.wait_for_selector("#hearth-chat >> text=Sources (", timeout=30_000)
    page.get_by_text("Sources (").first.click()
    page.wait_for_selector("#hearth-chat >> text=heron-manual.md", timeout=10_000)
    answer = services.conversations.messages(services.conversations.list()[0].id)[-1]
    assert answer.sources and answer.sources[0]["source"] == "heron-manual.md"


def test_stop_button_keeps_the_partial_answer(browser, quiet_server):
    services, url = quiet_server
    page = open_page(browser, url)
    set_number(page, "ctl-max_tokens", "1500")
    set_number(page, "ctl-temperature", "0")  # greedy: this prompt then runs to max_tokens (checked)
    page.fill("#message-box textarea", "List the numbers from 1 to 300 separated by commas.")
    page.click("#send")
    page.wait_for_function(LONG_ANSWER, timeout=60_000)
    page.click("#stop")
    page.wait_for_selector("#hearth-chat >> text=stopped", timeout=60_000)
    conv = services.conversations.list()[0]
    answer = services.conversations.messages(conv.id)[-1]
    assert answer.finish_reason == "cancelled"
    assert 0 < answer.completion_tokens < 1500 and answer.content.strip()
    page.close()


LONG_ANSWER = (
    "[...document.querySelectorAll('#hearth-chat [data-testid=bot]')].some(e => e.innerText.length > 40)"
)


def test_leaving_a_chat_while_it_answers_stops_it_and_shows_the_new_one(browser, quiet_server):
    """New chat and opening another chat mid-answer: the answer stops (what was written is
    saved, as Stop saves it) and the page shows the chat asked for, never the old one's stream."""
    services, url = quiet_server
    page = open_page(browser, url)
    set_number(page, "ctl-max_tokens", "1500")
    set_number(page, "ctl-temperature", "0")  # greedy: this prompt runs to max_tokens (see the Stop test)
    page.fill("#message-box textarea", "List the numbers from 1 to 300 separated by commas.")
    page.click("#send")
    page.wait_for_function(LONG_ANSWER, timeout=60_000)
    page.click("#new-chat")
    page.wait_for_function(EMPTY_CHAT, timeout=30_000)
    page.wait_for_timeout(1500)  # the old answer's stream would have drawn again by now
    assert page.evaluate(EMPTY_CHAT)
    listed = services.conversations.list()[0]
    answer = services.conversations.messages(listed.id)[-1]
    assert answer.finish_reason == "cancelled" and 0 < answer.completion_tokens < 1500
    assert services.chat.running_turns() == 0

    services.conversations.update(listed.id, title="Numbers, left mid-answer")  # the Stop test's has the same
    send(page, "Say hi.")  # a second chat; the first shows its stopped answer
    page.locator("#chat-list").get_by_text("Numbers, left mid-answer").click()
    page.wait_for_selector("#hearth-chat >> text=stopped", timeout=30_000)
    # a third chat starts the long answer afresh (greedy, it runs to max_tokens: asked again in
    # the first chat, the model sometimes ended its list early), and we go to the second mid-answer
    page.click("#new-chat")
    page.wait_for_function(EMPTY_CHAT, timeout=30_000)
    page.fill("#message-box textarea", "List the numbers from 1 to 300 separated by commas.")
    page.click("#send")
    page.wait_for_function(LONG_ANSWER, timeout=60_000)
    page.locator("#chat-list").get_by_text("Say hi.").click()
    shows_the_list = "document.querySelector('#hearth-chat').innerText.includes('List the numbers')"
    page.wait_for_function(f"!({shows_the_list})", timeout=30_000)
    page.wait_for_timeout(1500)  # the left answer's stream would have drawn again by now
    assert not page.evaluate(shows_the_list) and "Say hi." in page.inner_text("#hearth-chat")
    chats = [
        services.conversations.messages(c.id) for c in services.conversations.list() if c.id != listed.id
    ]
    third = next(m for m in chats if m[0].content.startswith("List the numbers"))  # the newest such chat
    again = third[-1]
    assert again.finish_reason == "cancelled" and again.role == "assistant"
    assert services.chat.running_turns() == 0
    page.close()


def test_core_memory_edited_on_the_page_reaches_the_next_prompt(server, page):
    services, _ = server
    page.get_by_role("tab", name="Memory").click()
    page.fill("#mem-block-text textarea", "The user's name is Orla and she keeps bees.")
    page.click("#mem-save")
    page.wait_for_selector("#mem-block-info >> text=43/2000", timeout=30_000)
    [human] = [b for b in services.memory.core.blocks() if b.label == "human"]
    assert human.value == "The user's name is Orla and she keeps bees."

    page.get_by_role("tab", name="Chat").click()
    new_chat(page)
    send(page, "What do I keep?")
    cid = services.conversations.list()[0].id
    # the stable system message now carries the block: the answer's prompt grew by its tokens
    messages = services.conversations.messages(cid)
    question = next(m for m in reversed(messages) if m.role == "user")
    turn = Turn(
        id="check",
        conversation=services.conversations.get(cid),
        user_message=question,
        history=tuple(m for m in messages if m.seq < question.seq),
        backend=services.models.backend,
        budget=services.models.backend.info.n_ctx // 2,
    )
    assert services.memory.contribute(turn).core_memory.count("Orla") == 1
    page.get_by_text("📊").last.click()
    page.wait_for_selector("#hearth-chat >> text=core memory", timeout=10_000)
