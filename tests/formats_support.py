"""Small real files of the formats people keep their knowledge in, built here with the same
libraries Hearth reads them with (python-pptx, openpyxl) or zipped by hand (ODT, EPUB), plus
hostile variants of each. Nothing is downloaded."""

from __future__ import annotations

import io
import json
import zipfile

FORMAT_FACTS = {
    "pptx": "The ferry to Skellig Michael leaves Portmagee only when the swell is under two metres.",
    "xlsx": "Wendeline Oakhurst",
    "odt": "The cooperage seasons its oak staves outdoors for three winters before coopering.",
    "epub": "The cartographer inked the coastline of the archipelago by lamplight.",
    "notebook": "compute_glacier_retreat",
}


def make_pptx(
    slides: list[tuple[str, list[str]]], *, notes: str = "", table: list[list[str]] | None = None
) -> bytes:
    """One 'Title and Content' slide per (title, bullets); notes and a table on the last one."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = None
    for title, bullets in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0] if bullets else ""
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
    if slide is not None and notes:
        slide.notes_slide.notes_text_frame.text = notes
    if slide is not None and table:
        shape = slide.shapes.add_table(len(table), len(table[0]), Inches(1), Inches(4), Inches(6), Inches(1))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                shape.table.cell(r, c).text = value
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def replace_member(data: bytes, member: str, content: bytes) -> bytes:
    """The same archive with one member's bytes replaced (to make a valid file hostile)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, content if info.filename == member else src.read(info.filename))
    return out.getvalue()


def billion_row_xlsx() -> bytes:
    """A valid workbook whose one sheet has a cell at row 1,000,000,000 (openpyxl walks every
    row before it)."""
    data = make_xlsx({"Data": [["name", "value"], ["a", 1]]})
    sheet = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'
        b'<row r="1000000000"><c r="A1000000000" t="inlineStr"><is><t>far away</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    return replace_member(data, "xl/worksheets/sheet1.xml", sheet)


def _zip(members: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            method = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(name, content, compress_type=method)
    return out.getvalue()


_ODT_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
)


def make_odt(body: str, *, encrypted: bool = False, content: str | None = None) -> bytes:
    """An ODT whose office:text holds ``body`` (ODF XML)."""
    encryption = '<manifest:encryption-data manifest:checksum-type="SHA1"/>' if encrypted else ""
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        f'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{encryption}'
        "</manifest:file-entry></manifest:manifest>"
    )
    if content is None:
        content = (
            f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODT_NS}>'
            f"<office:body><office:text>{body}</office:text></office:body></office:document-content>"
        )
    return _zip(
        {
            "mimetype": "application/vnd.oasis.opendocument.text",
            "META-INF/manifest.xml": manifest,
            "content.xml": content,
        }
    )


def make_epub(chapters: list[tuple[str, str]], *, drm: bool = False) -> bytes:
    """An EPUB 3 with one XHTML file per (heading, paragraph), in spine order."""
    container = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    items = "".join(
        f'<item id="c{n}" href="text/ch{n}.xhtml" media-type="application/xhtml+xml"/>'
        for n in range(len(chapters))
    )
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(len(chapters)))
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Atlas</dc:title></metadata>'
        f"<manifest>{items}</manifest><spine>{spine}</spine></package>"
    )
    members: dict[str, str | bytes] = {
        "mimetype": "application/epub+zip",
        "META-INF/container.xml": container,
        "OEBPS/content.opf": opf,
    }
    for n, (heading, paragraph) in enumerate(chapters):
        members[f"OEBPS/text/ch{n}.xhtml"] = (
            '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>Atlas</title></head><body><h1>{heading}</h1><p>{paragraph}</p></body></html>"
        )
    if drm:
        members["META-INF/encryption.xml"] = (
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="OEBPS/text/ch0.xhtml"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>"
        )
    return _zip(members)


def make_notebook(cells: list[tuple[str, str, list[dict] | None]]) -> bytes:
    """An nbformat 4 notebook from (cell_type, source, outputs)."""
    out = []
    for kind, source, outputs in cells:
        cell: dict = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
        if kind == "code":
            cell |= {"outputs": outputs or [], "execution_count": 1}
        out.append(cell)
    return json.dumps({"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def zip_bomb(member: str, megabytes: int = 40) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(member, "w", force_zip64=True) as handle:
            block = b"\0" * (1 << 20)
            for _ in range(megabytes):
                handle.write(block)
    return out.getvalue()


OLE_LOCKED = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4096
