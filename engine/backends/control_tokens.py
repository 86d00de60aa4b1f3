"""Untrusted text never becomes a control token.

The templated prompt is tokenized with special tokens parsed (that is how the template's
``<|im_start|>`` becomes a role marker). A message that spells a control token itself (a
document, a memory, a stored answer) gets that spelling broken first, whatever the
template, so it stays plain text. Text that spells none is left byte for byte.

Functions take the loaded ``llama_cpp.Llama`` and the ``llama_cpp`` module, so only the
backend module imports llama_cpp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import GenerationError

if TYPE_CHECKING:
    from types import ModuleType

    from llama_cpp import Llama

#: zero-width space: a control token's spelling with it inside reads the same but is plain text
BREAK = "\u200b"

#: texts whose defused form is remembered (prompt_tokens.Tokens.defused), and the longest kept
#: (longer ones are checked every time): a chat's whole history is rendered again every turn,
#: and checking it again took 8 ms of a 2,400-token prompt
DEFUSED_KEEP = 1024
DEFUSED_LONGEST = 32_000


def defuse(llm: Llama, llama_cpp: ModuleType, text: str) -> str:
    """``text`` with every control-token spelling broken by a zero-width space."""
    for _ in range(16):  # each pass breaks every spelling found; nested spellings take a few
        spellings = control_spellings(llm, llama_cpp, text)
        if not spellings:
            return text
        before = text
        for spelling in spellings:
            text = text.replace(spelling, spelling[:1] + BREAK + spelling[1:])
        if text == before:
            break
    raise GenerationError(
        "A message holds text this model's tokenizer reads as a control token and it could "
        "not be made plain text; remove the <|...|>-style markers from it."
    )


def control_spellings(llm: Llama, llama_cpp: ModuleType, text: str) -> set[str]:
    """Control-token texts that ``text`` spells (tokenized with special parsing on)."""
    if not text:
        return set()
    data = text.encode("utf-8", "replace")
    parsed = llm.tokenize(data, add_bos=False, special=True)
    if parsed == llm.tokenize(data, add_bos=False, special=False):
        return set()  # the common case: nothing special in it
    model = llm._model
    # what only special parsing makes: control tokens (and <unk>)
    dangerous = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    return {model.token_get_text(t) for t in parsed if model.token_get_attr(t) & dangerous} - {""}
