"""The citation viewer: a source under an answer opens its passage, in the text around it, with
the cited span marked. Plain functions (no gradio); app/ui.py lays the viewer out.

How a click reaches Python without inline script (the page's CSP allows none): each source in
the sources block is a link to ``#cite-<chunk id>``. One click listener, installed by the page's
load event (``CLICK_JS``: Gradio runs an event's ``js`` itself), turns such a click into a value
of the hidden ``#cite-request`` box, whose change event calls ``open_citation``. The chunk id is
checked against ``CHUNK_ID`` before it becomes a link and again when it comes back.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError

from .markup import escape_inline, passage_html

if TYPE_CHECKING:
    from engine.factory import Services

#: chunk ids are "<document id>-<seq>": letters, digits, '-' and '_' only, so a link can carry one
CHUNK_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
LINK_PREFIX = "#cite-"

#: installs the one click listener (once per page): a click on a source link asks for its passage;
#: a counter makes each click a new value, so a second click on the same source opens it again
CLICK_JS = """() => {
  if (window.hearthCitations) return;
  window.hearthCitations = true;
  let clicks = 0;
  document.addEventListener('click', (event) => {
    const link = event.target instanceof Element ? event.target.closest('a[href^="#cite-"]') : null;
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const box = document.querySelector('#cite-request textarea, #cite-request input');
    if (!box) return;
    clicks += 1;
    box.value = link.getAttribute('href').slice(6) + ' ' + clicks;
    box.dispatchEvent(new Event('input', {bubbles: true}));
  }, true);
}"""
#: brings the marked span into view once the viewer has rendered it
SCROLL_JS = """() => {
  const show = (tries) => {
    const mark = document.querySelector('#source-passage mark');
    if (mark) mark.scrollIntoView({block: 'center'});
    else if (tries > 0) setTimeout(() => show(tries - 1), 100);
  };
  show(20);
}"""


def source_link(hit: dict[str, Any], label: str) -> str:
    """``label`` (already escaped markdown) as a link that opens the hit's passage, when it has one."""
    chunk_id = str(hit.get("id") or "")
    if hit.get("kind") != "chunk" or not CHUNK_ID.match(chunk_id):
        return label
    return f"[{label}]({LINK_PREFIX}{chunk_id})"


def open_citation(services: Services, request: str) -> tuple[str, str]:
    """(title markdown, passage HTML) for a ``#cite-request`` value: "<chunk id> <click number>"."""
    chunk_id = (request or "").split(" ")[0]
    if not CHUNK_ID.match(chunk_id) or services.documents is None:
        return "**Source**", passage_html("This source cannot be opened.", 0, 0)
    try:
        found = services.documents.passage(chunk_id)
    except EngineError as e:
        return "**Source**", passage_html(str(e), 0, 0)
    title = f"**{escape_inline(found.name)}**"
    if found.location:
        title += f" · {escape_inline(found.location)}"
    body = passage_html(
        found.text, found.start, found.end, more_before=found.more_before, more_after=found.more_after
    )
    return title, body
