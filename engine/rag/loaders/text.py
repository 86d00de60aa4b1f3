"""Plain text in any common encoding: detect, decode, and refuse binary data.

The only module importing charset_normalizer.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from ...errors import IngestError
from ..blocks import Block, LoadedDocument

_BOMS = (  # longest first: a UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: share of control characters above which decoded "text" is really binary data
_MAX_CONTROL_SHARE = 0.01
#: when detection ties, the encodings most files in the wild use, most likely first
_PREFERRED = ("utf_8", "cp1252", "latin_1", "iso8859_15", "gb18030", "big5", "shift_jis", "euc_kr")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """Return ``(text, encoding)``; raise IngestError for binary data."""
    encoding = _bom_encoding(data) or _utf16_without_bom(data)
    if encoding is None:
        if b"\x00" in data:
            # NUL padding (a logger that crashed) in UTF-8 text is dropped; binary data stays refused
            data = data.replace(b"\x00", b"")
            if not _utf8(data):
                raise _binary(name)
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = _mostly_utf8(data) or _detect(data, name)
    else:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as e:
            raise IngestError(f"{name}: looks like {encoding} text but does not decode ({e}).") from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _control_share(text) > _MAX_CONTROL_SHARE:
        raise _binary(name)
    return text, encoding


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mostly_utf8(data: bytes) -> tuple[str, str] | None:
    """UTF-8 text with a few stray bytes (a Latin-1 line pasted into it, logs joined together):
    read as UTF-8 with those bytes replaced. Detection would otherwise pick a code page for the
    whole file and garble every accented character in it (one "café" made "Grüße" "GrĂĽĂźe").
    Text in another encoding hardly ever holds valid multi-byte UTF-8, so it is left alone."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    good = sum(1 for ch in text if ord(ch) > 127 and ch != "\ufffd")
    if good >= 10 * bad and bad <= len(text) // 100:
        return text, "utf-8"
    return None


def _bom_encoding(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """ASCII-heavy UTF-16 without a BOM has a zero in every other byte."""
    sample = data[:4096]
    if len(sample) < 8 or len(sample) % 2:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _detect(data: bytes, name: str) -> tuple[str, str]:
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise _binary(name)
    # short Western text often fits several code pages equally well: prefer the common ones
    ties = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    for preferred in _PREFERRED:
        best = next((m for m in ties if m.encoding == preferred), None) or best
        if best.encoding == preferred:
            break
    return str(best), best.encoding


def _control_share(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    controls = sum(1 for ch in sample if ch not in "\n\t\f\v" and unicodedata.category(ch) == "Cc")
    return controls / len(sample)


def _binary(name: str) -> IngestError:
    return IngestError(
        f"{name}: this is binary data, not text (whatever its name says). "
        "Add PDF, DOCX, HTML, Markdown, text, CSV, JSON or source files."
    )


def load_text(data: bytes, name: str) -> LoadedDocument:
    text, encoding = decode_text(data, name)
    blocks = [Block(text=p.strip("\n")) for p in paragraphs(text)]
    return LoadedDocument(kind="text", blocks=blocks, encoding=encoding)


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, without empty ones."""
    return [p for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
