"""The Model tab in a real browser: connect to a real OpenAI-compatible server, chat through
it, then switch back to the local GGUF, all from the page."""

from __future__ import annotations

import pytest
from page_support import open_page, send, serve_page
from remote_servers import start_llama_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    server = start_llama_server(tmp_path_factory.mktemp("llama"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    with serve_page(tmp_path_factory.mktemp("remote-page"), memory=False) as served:
        yield served


def test_connect_to_a_server_chat_through_it_and_switch_back_to_the_local_model(
    page_server, model_server, browser
):
    services, url = page_server
    page = open_page(browser, url)
    try:
        page.get_by_role("tab", name="Model").click()
        page.get_by_text("Remote model server").click()
        page.fill("#remote-url input, #remote-url textarea", model_server.url)
        page.fill("#remote-n-ctx input[type=number]", "2048")
        page.click("#remote-connect")
        page.wait_for_function(
            "document.querySelector('#model-facts').innerText.includes('llama-cpp-python server')",
            timeout=60_000,
        )
        facts = page.inner_text("#model-facts")
        assert model_server.url in facts and "typical_p" in facts and "2,048 tokens" in facts
        assert services.models.info.backend == "remote"

        page.get_by_role("tab", name="Chat").click()
        send(page, "Tell me about the moon.")
        answer = services.conversations.messages(services.conversations.list()[0].id)[-1]
        assert answer.role == "assistant" and answer.content.strip()
        assert answer.model == services.models.info.name

        page.get_by_role("tab", name="Model").click()
        page.click("#load-model")
        page.wait_for_function(
            "document.querySelector('#model-facts').innerText.includes('quantization')", timeout=60_000
        )
        assert services.models.info.backend == "llama.cpp"
        page.screenshot(path=str(services.settings.data_dir / "model-tab.png"))
    finally:
        page.close()
