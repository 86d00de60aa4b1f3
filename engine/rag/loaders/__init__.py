"""Turn a file's bytes into structural blocks, by type.

Each parsing library lives in its own module and is imported only when a file of
its type arrives: pdf (pypdf), docx (python-docx), html (bs4), text (charset_normalizer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import IngestError
from ...library import IMAGE_SUFFIXES
from ..blocks import LoadedDocument


@dataclass(frozen=True, kw_only=True)
class LoadLimits:
    """Bounds on what one untrusted file may make a loader produce."""

    #: PDFs with more pages are refused before any page is read
    max_pages: int = 2000
    #: documents whose text runs past this many characters are refused
    max_chars: int = 10_000_000


CODE_SUFFIXES = frozenset(
    ".py .pyi .js .mjs .cjs .ts .tsx .jsx .java .kt .kts .scala .c .h .cc .cpp .cxx .hpp .hh .cs .go .rs "
    ".rb .php .swift .m .mm .r .jl .lua .pl .pm .sh .bash .zsh .fish .ps1 .bat .sql .css .scss .sass "
    ".less .vue .svelte .dart .ex .exs .erl .hs .ml .clj .el .vim .yaml .yml .toml .ini .cfg .conf "
    ".xml .gradle .cmake .mk .dockerfile .proto .graphql .tf .nix .zig .f90".split()
)
SUFFIX_KINDS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".rst": "text",
    ".tex": "text",
    ".srt": "text",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".ipynb": "json",
    **{s: "code" for s in CODE_SUFFIXES},
    **{s: "image" for s in IMAGE_SUFFIXES},
}
CODE_NAMES = frozenset({"makefile", "dockerfile", "rakefile", "gemfile", "justfile", "cmakelists.txt"})
#: formats people often try that Hearth cannot read, with what to do instead
UNSUPPORTED = {
    ".doc": "old binary Word format: save it as .docx",
    ".rtf": "RTF: save it as .docx or .txt",
    ".odt": "OpenDocument text: save it as .docx",
    ".xls": "a spreadsheet: export it as .csv",
    ".xlsx": "a spreadsheet: export it as .csv",
    ".ods": "a spreadsheet: export it as .csv",
    ".ppt": "a presentation: export it as .pdf",
    ".pptx": "a presentation: export it as .pdf",
    ".epub": "an e-book: convert it to .pdf or .html",
    ".zip": "an archive: unpack it and add the folder",
}


def file_kind(path: Path) -> str:
    """The loader for ``path`` by name: pdf, docx, html, markdown, text, csv, json, code, image,
    or "unknown" (sniffed as text when read)."""
    if path.name.lower() in CODE_NAMES:
        return "code"
    return SUFFIX_KINDS.get(path.suffix.lower(), "unknown")


def load_bytes(data: bytes, *, name: str, kind: str, limits: LoadLimits = LoadLimits()) -> LoadedDocument:
    """Parse ``data`` (the bytes of a file called ``name``) with the loader for ``kind``.

    Untrusted input: run it in a worker process with a time limit (``engine.rag.parsing``)."""
    document = _load(data, name=name, kind=kind, limits=limits)
    chars = sum(len(b.text) for b in document.blocks)
    if chars > limits.max_chars:
        raise too_much_text(name, limits.max_chars)
    return document


def too_much_text(name: str, max_chars: int) -> IngestError:
    return IngestError(
        f"{name}: refused, it has more than {max_chars:,} characters of text (the limit per document). "
        "Split it into smaller files, or raise the limit (--max-chars)."
    )


def _load(data: bytes, *, name: str, kind: str, limits: LoadLimits) -> LoadedDocument:
    suffix = Path(name).suffix.lower()
    if kind == "image":
        raise IngestError(
            f"{name}: this is an image; images are indexed by the Images feature, not Documents."
        )
    if suffix in UNSUPPORTED:
        raise IngestError(f"{name}: cannot read {UNSUPPORTED[suffix]}.")
    if kind == "pdf":
        from .pdf import load_pdf

        return load_pdf(data, name, max_pages=limits.max_pages, max_chars=limits.max_chars)
    if kind == "docx":
        from .docx import load_docx

        return load_docx(data, name)
    if kind == "html":
        from .html import load_html

        return load_html(data, name)
    from . import structured, text

    if kind == "json":
        return structured.load_json(data, name, max_chars=limits.max_chars)
    loader = {
        "markdown": structured.load_markdown,
        "code": structured.load_code,
        "csv": structured.load_csv,
    }.get(kind, text.load_text)
    return loader(data, name)
