"""The studio on the page, in Chromium: answer details, the next-token view and preset files."""

from __future__ import annotations

import json

import pytest
from page_support import send, serve_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_page(tmp_path_factory.mktemp("studio-page"), memory=False) as served:
        yield served


@pytest.fixture
def page_height() -> int:
    return 1400


def _stage_count(page, stage: str) -> str:
    return page.inner_text(f"#studio-view details[data-stage={stage}] .kept")


def test_click_a_token_to_see_each_stage_then_a_slider_recomputes_it(server, page):
    services, _ = server
    send(page, "Name a colour.")
    answer = services.conversations.messages(services.conversations.list()[0].id)[-1]
    page.get_by_text("🔬 Studio").click()
    page.click("#studio-pick")
    page.wait_for_selector("#studio-details >> text=seed used", timeout=30_000)
    assert str(answer.config["seed"]) in page.inner_text("#studio-details")  # the drawn seed, not -1
    tokens = page.locator("#studio-tokens .token")
    tokens.first.wait_for(timeout=30_000)
    assert tokens.count() == answer.completion_tokens

    tokens.nth(1).click()
    page.wait_for_selector("#studio-view details[data-stage=raw]", timeout=30_000)
    # the page shows what the engine computes from the stored logprobs
    config = services.presets.get("Balanced").replace(seed=answer.config["seed"])
    view = services.studio.position(services.studio.answer_tokens(answer.id, config), 1)
    first_id, first_p = view.stages[0].kept[0]
    raw_rows = page.locator("#studio-view details[data-stage=raw] tr")
    assert f"{first_p:.4f}" in raw_rows.nth(1).inner_text() and str(first_id) in raw_rows.nth(1).inner_text()
    assert "drawn" in page.inner_text("#studio-drawn")
    assert _stage_count(page, "top_k") == "40"

    box = page.locator("#studio-top_k input[type=number]")
    box.fill("1")
    box.press("Enter")
    page.wait_for_function(
        "document.querySelector('#studio-view details[data-stage=top_k] .kept')?.innerText === '1'",
        timeout=30_000,
    )
    assert _stage_count(page, "temperature") == "1"


def _upload(page, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click("#preset-import")
    chooser.value.set_files(str(path))


def test_a_preset_file_from_a_newer_hearth_is_refused_on_the_page(server, page, tmp_path):
    services, _ = server
    before = services.presets.names()
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format": "hearth-preset", "version": 99, "name": "Future", "config": {}}))
    _upload(page, newer)
    page.wait_for_selector("#preset-status >> text=newer Hearth", timeout=30_000)
    assert services.presets.names() == before

    good = tmp_path / "good.json"
    good.write_text(services.presets.export("Mirostat 2").replace('"Mirostat 2"', '"My mirostat"'))
    _upload(page, good)
    page.wait_for_selector("#preset-status >> text=My mirostat", timeout=30_000)
    assert services.presets.get("My mirostat") == services.presets.get("Mirostat 2")
