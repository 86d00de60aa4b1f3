"""EPUB: the book's chapters in reading order (the package's spine), each read as XHTML, so
chapter and section headings become headings. Plain zip and XML: the package files are parsed
with entities and the network off (archive.safe_xml), the chapters by the HTML loader.
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from ...errors import IngestError
from ..blocks import Block, LoadedDocument
from .archive import check_zip, read_member, safe_xml
from .html import html_blocks
from .text import decode_text

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_ENC = "{http://www.w3.org/2001/04/xmlenc#}"
_CHAPTER_TYPES = ("application/xhtml+xml", "text/html", "application/x-dtbook+xml")
#: fonts are "encrypted" by a published obfuscation that needs no key; anything else is DRM
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")


def load_epub(data: bytes, name: str, *, max_chars: int = 10_000_000) -> LoadedDocument:
    with check_zip(data, name, fmt="EPUB") as archive:
        members = set(archive.namelist())
        container = safe_xml(
            read_member(archive, "META-INF/container.xml", name, fmt="EPUB"), name, fmt="EPUB"
        )
        rootfile = container.find(f".//{_CONTAINER}rootfile")
        package_path = rootfile.get("full-path", "") if rootfile is not None else ""
        package = safe_xml(read_member(archive, package_path, name, fmt="EPUB"), name, fmt="EPUB")
        chapters = _spine(package, posixpath.dirname(package_path))
        if "META-INF/encryption.xml" in members:
            _refuse_drm(read_member(archive, "META-INF/encryption.xml", name, fmt="EPUB"), chapters, name)
        blocks: list[Block] = []
        chars = 0
        for path in chapters:
            if path not in members:
                continue  # a broken reference costs that chapter, not the book
            text, _ = decode_text(read_member(archive, path, name, fmt="EPUB"), name)
            chapter, _ = html_blocks(text, web_page=False)
            blocks.extend(chapter)
            chars += sum(len(b.text) for b in chapter)
            if chars > max_chars:
                from . import too_much_text

                raise too_much_text(name, max_chars)
    if not blocks:
        raise IngestError(f"{name}: no text found in the e-book's chapters (images only, or damaged?).")
    return LoadedDocument(kind="epub", blocks=blocks, n_pages=len(chapters))


def _spine(package, folder: str) -> list[str]:
    """Archive paths of the chapters, in reading order."""
    hrefs = {}
    for item in package.iter(f"{_OPF}item"):
        if item.get("media-type", "") in _CHAPTER_TYPES:
            hrefs[item.get("id", "")] = item.get("href", "")
    paths = []
    for ref in package.iter(f"{_OPF}itemref"):
        href = hrefs.get(ref.get("idref", ""))
        if href:
            path = posixpath.normpath(posixpath.join(folder, unquote(href.split("#")[0])))
            if path not in paths:
                paths.append(path)
    return paths


def _refuse_drm(encryption: bytes, chapters: list[str], name: str) -> None:
    root = safe_xml(encryption, name, fmt="EPUB")
    for data in root.iter(f"{_ENC}EncryptedData"):
        method = data.find(f"{_ENC}EncryptionMethod")
        reference = data.find(f".//{_ENC}CipherReference")
        algorithm = method.get("Algorithm", "") if method is not None else ""
        uri = unquote(reference.get("URI", "")) if reference is not None else ""
        if algorithm not in _FONT_OBFUSCATION and (uri in chapters or not uri):
            raise IngestError(
                f"{name}: the e-book is protected by DRM (its chapters are encrypted), so its text "
                "cannot be read. Only DRM-free EPUB files can be added."
            )
