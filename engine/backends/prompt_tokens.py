"""A templated prompt's tokens without tokenizing the whole conversation again every turn.

llama.cpp tokenizes a prompt (special tokens parsed) by first cutting it at special-token
spellings, then tokenizing each piece of plain text on its own. So a prompt cut right after a
message's end-of-turn token (``<|im_end|>`` in ChatML) tokenizes as its pieces do, one by one,
and each earlier message's piece is the same text as last turn: remembered, it costs a lookup.
Measured here: 19 ms for a 3,200-token prompt, every turn, before any of it was evaluated.

The cut is the end-of-generation control token the first prompt holds most often. Where
cutting might change tokens (a vocabulary that appends an end token, a cut token that strips
whitespace beside it), prompts are tokenized whole; and the first prompts tokenized in pieces
are tokenized whole too and compared, so a model whose tokenizer cuts differently falls back
to whole prompts (with a log line) instead of ever getting other tokens.
"""

from __future__ import annotations

import logging
import threading
from array import array
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from .control_tokens import DEFUSED_KEEP, DEFUSED_LONGEST, defuse
from .token_counts import Remembered, TokenCounts

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

#: pieces remembered (a piece is one message and the template around it), as 4-byte ids;
#: pieces over token_counts.LONGEST characters (a long pasted text) are tokenized every time
PIECES = 2048
#: prompts in pieces also tokenized whole and compared before pieces are trusted alone
CHECKED_PROMPTS = 3
_UNKNOWN = ""  # not chosen yet: from the first prompt that holds an end-of-generation token


class Tokens:
    """Token counts of texts, defused message texts and tokens of templated prompts for one
    loaded model, each remembered; ``live`` gives the model (or raises once it was closed)."""

    def __init__(self, live: Callable[[], Llama], llama_cpp: ModuleType):
        self._live = live
        self._lc = llama_cpp
        self.count = TokenCounts(lambda t: len(live().tokenize(t.encode("utf-8", "replace"), add_bos=False)))
        #: a message's text with every control-token spelling broken (control_tokens.defuse)
        self.defused = Remembered(
            lambda t: defuse(live(), llama_cpp, t), empty="", size=DEFUSED_KEEP, longest=DEFUSED_LONGEST
        )
        self._cut: str | None = _UNKNOWN
        self._pieces = Remembered(
            lambda p: array("i", live().tokenize(p.encode("utf-8", "replace"), add_bos=False, special=True)),
            empty=array("i"),
            size=PIECES,
        )
        self._lock = threading.Lock()
        self._unchecked = CHECKED_PROMPTS
        self._heads: dict[bool, list[int]] = {}

    def prompt(self, text: str, add_bos: bool) -> list[int]:
        """``tokenize(text, add_bos=add_bos, special=True)``, reusing earlier pieces."""
        cut = self._cut
        if not cut or text.count(cut) < 2:
            whole = self._whole(text, add_bos)
            if cut == _UNKNOWN:
                self._cut = _cut_spelling(self._live(), self._lc, whole)
            return whole
        pieces = [p + cut for p in text.split(cut)]
        pieces[-1] = pieces[-1][: -len(cut)]
        if add_bos not in self._heads:  # what the prompt starts with: the BOS, if any
            self._heads[add_bos] = self._live().tokenize(b"", add_bos=add_bos, special=True)
        tokens = list(self._heads[add_bos])
        for piece in pieces:
            tokens += self._pieces(piece)
        if self._unchecked > 0:
            whole = self._whole(text, add_bos)
            with self._lock:
                if whole != tokens:
                    self._cut = None
                    log.info("this model's prompts are tokenized whole: in pieces they differed")
                    return whole
                self._unchecked -= 1
        return tokens

    def _whole(self, text: str, add_bos: bool) -> list[int]:
        return self._live().tokenize(text.encode("utf-8", "replace"), add_bos=add_bos, special=True)


def _cut_spelling(llm: Llama, llama_cpp: ModuleType, prompt: list[int]) -> str | None:
    """The text of the end-of-generation control token ``prompt`` holds most often (a
    message's end), where cutting after it cannot change the tokens; else None (whole prompts),
    or ``_UNKNOWN`` when ``prompt`` holds none."""
    vocab = llm._model.vocab
    if llama_cpp.llama_vocab_get_add_eos(vocab):  # an end token appended to each piece would be wrong
        return None
    strips = llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP | llama_cpp.LLAMA_TOKEN_ATTR_RSTRIP
    for token, _ in Counter(prompt).most_common():
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if not llama_cpp.llama_vocab_is_eog(vocab, token) or not attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
            continue
        if attr & strips:
            return None
        raw = llama_cpp.llama_vocab_get_text(vocab, token)
        spelling = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        # it must read back as that one token, or the prompt never holds it as such
        ok = spelling and llm.tokenize(spelling.encode(), add_bos=False, special=True) == [token]
        return spelling if ok else None
    return _UNKNOWN  # none in this prompt (a template that ends turns otherwise): ask the next
