"""Enter sends, Shift+Enter adds a newline, as in every chat app (issue 8, item 1), in a real browser."""

from __future__ import annotations

import pytest
from page_support import EMPTY_CHAT, send, set_number

pytestmark = pytest.mark.browser


def test_enter_sends_and_shift_enter_adds_a_newline(server, page):
    services, _ = server
    set_number(page, "ctl-max_tokens", "48")  # any answer will do: a short one, on a loaded machine too
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


def test_new_chat_keeps_a_draft_but_drops_an_edit(server, page):
    """New chat empties the chat, not the message box: a draft typed while the click travels
    survives its late reply. An edit of the old chat's last message is cleared with it."""
    services, _ = server
    set_number(page, "ctl-temperature", "0")
    set_number(page, "ctl-max_tokens", "8")
    send(page, "Say hi.")
    box = page.locator("#message-box textarea")
    page.click("#edit-last")
    page.wait_for_function("document.querySelector('#message-box textarea').value === 'Say hi.'")
    page.click("#new-chat")
    page.wait_for_function(EMPTY_CHAT, timeout=30_000)
    page.wait_for_function("document.querySelector('#message-box textarea').value === ''", timeout=30_000)

    send(page, "Say hello.")
    box.fill("A draft for the next chat")
    page.click("#new-chat")
    page.wait_for_function(EMPTY_CHAT, timeout=30_000)  # the click's reply, message box included
    assert box.input_value() == "A draft for the next chat"
    assert len(services.conversations.list()) >= 2
