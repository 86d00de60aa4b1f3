"""Enter sends, Shift+Enter adds a newline, as in every chat app (issue 8, item 1), in a real browser."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_enter_sends_and_shift_enter_adds_a_newline(server, page):
    services, _ = server
    box = page.locator("#message-box textarea")
    box.click()
    box.press_sequentially("Name a colour.")
    box.press("Shift+Enter")
    box.press_sequentially("Just one word.")
    assert box.input_value() == "Name a colour.\nJust one word."
    assert services.conversations.list() == []  # Shift+Enter sent nothing

    box.press("Enter")
    page.wait_for_function(
        "[...document.querySelectorAll('#hearth-chat *')].some(e => e.children.length === 0 && "
        "e.textContent.includes('tok/s'))",
        timeout=120_000,
    )
    [conv] = services.conversations.list()
    user, answer = services.conversations.messages(conv.id)
    assert user.content == "Name a colour.\nJust one word."
    assert answer.role == "assistant" and answer.content.strip()
    assert box.input_value() == ""  # sent, so the box is empty for the next message
