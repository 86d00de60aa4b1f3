"""Citations a user can open, in a real browser: ask about an ingested document, click the source
under the answer, and the viewer shows the passage in its surroundings with the cited span marked,
as inert text, under the page's Content-Security-Policy."""

from __future__ import annotations

import pytest
from page_support import open_page, send, serve_page

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
FACT = "The HX-9931 heron pump must be primed with 3 litres of rainwater before each season."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    manual = folder / "heron-manual.md"
    manual.write_text(
        "Heron pump\n==========\n\nThe pump sits beside the pond.\n\n"
        f"Priming\n-------\n\n{FACT} {HOSTILE}\n\n    pump --prime --litres 3\n\n"
        "Storage\n-------\n\nKeep the pump indoors over winter, dry and drained.\n",
        encoding="utf-8",
    )
    with serve_page(tmp_path_factory.mktemp("cite"), memory=False) as (services, url):
        [result] = services.documents.ingest_paths([manual])
        assert result.status == "added", result.message
        yield services, url


def test_clicking_a_source_opens_the_passage_with_the_cited_span_marked(server, browser):
    services, url = server
    violations: list[str] = []

    def listen(opened) -> None:
        opened.on(
            "console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None
        )

    page = open_page(browser, url, listen=listen)
    send(page, "How is the HX-9931 heron pump primed before the season?")
    answer = services.conversations.messages(services.conversations.list()[0].id)[-1]
    cited = next(s for s in answer.sources if s["source"] == "heron-manual.md")
    assert cited["location"] == "Heron pump > Priming"
    assert not page.locator("#source-viewer").is_visible()

    page.get_by_text("Sources (").first.click()
    link = page.locator('#hearth-chat a[href^="#cite-"]').first
    link.wait_for(timeout=10_000)
    assert "Heron pump > Priming" in link.inner_text()
    link.click()
    mark = page.locator("#source-passage mark")
    mark.wait_for(timeout=30_000)
    assert FACT in mark.inner_text() and mark.inner_text().strip() == cited["text"].strip()
    assert "heron-manual.md" in page.inner_text("#source-title")
    assert "Heron pump > Priming" in page.inner_text("#source-title")
    passage = page.inner_text("#source-passage")
    assert "pump indoors over winter" not in passage  # another section: not shown around this one
    assert HOSTILE in passage  # the stored text is shown as text ...
    assert page.evaluate("window.__xss") is None  # ... and never runs
    assert page.locator("#source-passage img, #source-passage script").count() == 0
    in_view = page.evaluate(
        "(() => { const r = document.querySelector('#source-passage mark').getBoundingClientRect();"
        " const box = document.querySelector('#source-passage').getBoundingClientRect();"
        " return r.bottom > box.top && r.top < box.bottom && r.top >= 0 && r.top < window.innerHeight; })()"
    )
    assert in_view
    assert page.url == url or page.url.rstrip("/") == url.rstrip("/")  # the link did not navigate
    page.click("#source-close")
    page.wait_for_selector("#source-viewer", state="hidden", timeout=10_000)
    assert not violations, violations
    page.close()
