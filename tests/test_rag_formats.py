"""Office files, e-books, notebooks and Markdown read with their structure, and hostile
versions of each refused with a clear message: the loaders directly, then a real ingest
through the parser worker process (real SQLite, Chroma and MiniLM)."""

from __future__ import annotations

import os

import pytest
from formats_support import (
    FORMAT_FACTS,
    OLE_LOCKED,
    billion_row_xlsx,
    make_epub,
    make_notebook,
    make_odt,
    make_pptx,
    make_xlsx,
    replace_member,
    zip_bomb,
)

from engine import Settings, build
from engine.errors import IngestError
from engine.rag.chunking import chunk_blocks
from engine.rag.loaders import LoadLimits, file_kind, load_bytes

LOL = (
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("abcdefgh", "bcdefghi"))
    + "]>"
)


def outline(doc) -> list[tuple[str, int, int | None, str]]:
    return [(b.kind, b.level, b.page, b.text) for b in doc.blocks]


def count_tokens(text: str) -> int:
    return len(text.split())


def test_pptx_slides_are_pages_headed_by_their_titles_with_tables_and_notes():
    data = make_pptx(
        [("Ferries", ["Timetable", FORMAT_FACTS["pptx"]]), ("Fares", ["Adults pay sixty euro"])],
        notes="Refunds only for cancelled crossings",
        table=[["Route", "Days"], ["Portmagee", "Mon Wed"]],
    )
    doc = load_bytes(data, name="ferries.pptx", kind=file_kind_of("ferries.pptx"))
    assert doc.kind == "pptx" and doc.n_pages == 2
    assert outline(doc) == [
        ("heading", 1, 1, "Ferries"),
        ("text", 0, 1, "Timetable"),
        ("text", 0, 1, FORMAT_FACTS["pptx"]),
        ("heading", 1, 2, "Fares"),
        ("text", 0, 2, "Adults pay sixty euro"),
        ("row", 0, 2, "Route | Days"),
        ("row", 0, 2, "Portmagee | Mon Wed"),
        ("text", 0, 2, "Notes: Refunds only for cancelled crossings"),
    ]
    _, chunks = chunk_blocks(doc.blocks, count_tokens=count_tokens, max_tokens=200)
    assert [(c.page, c.section) for c in chunks] == [(1, "Ferries"), (2, "Fares")]  # a slide per chunk


def test_xlsx_sheets_are_headings_and_rows_are_lines():
    data = make_xlsx(
        {
            "Staff": [
                ["name", "role", "start"],
                [FORMAT_FACTS["xlsx"], "cooper", 1998.0],
                [None, None],
                ["Al", "smith"],
            ],
            "Empty": [],
            "Stock": [["item", "count"], ["staves", 400]],
        }
    )
    doc = load_bytes(data, name="yard.xlsx", kind=file_kind_of("yard.xlsx"))
    assert outline(doc) == [
        ("heading", 1, None, "Sheet: Staff"),
        ("heading", 2, None, "name | role | start"),
        ("row", 0, None, f"{FORMAT_FACTS['xlsx']} | cooper | 1998"),
        ("row", 0, None, "Al | smith"),
        ("heading", 1, None, "Sheet: Stock"),
        ("heading", 2, None, "item | count"),
        ("row", 0, None, "staves | 400"),
    ]
    _, chunks = chunk_blocks(doc.blocks, count_tokens=count_tokens, max_tokens=200)
    assert [c.heading for c in chunks] == ["", ""]  # the sheet name and column names are in the text
    assert [c.section for c in chunks] == [
        "Sheet: Staff > name | role | start",
        "Sheet: Stock > item | count",
    ]
    assert chunks[0].text.startswith("Sheet: Staff\n\nname | role | start\nWendeline")


def test_odt_headings_lists_and_tables():
    body = (
        '<text:h text:outline-level="1">Cooperage</text:h>'
        f"<text:p>{FORMAT_FACTS['odt']}</text:p>"
        '<text:h text:outline-level="2">Tools</text:h>'
        '<text:list><text:list-item><text:p>Adze<text:s text:c="2"/>and croze</text:p></text:list-item></text:list>'
        "<table:table><table:table-row><table:table-cell><text:p>Wood</text:p></table:table-cell>"
        "<table:table-cell><text:p>Oak</text:p></table:table-cell></table:table-row></table:table>"
    )
    doc = load_bytes(make_odt(body), name="barrels.odt", kind=file_kind_of("barrels.odt"))
    assert outline(doc) == [
        ("heading", 1, None, "Cooperage"),
        ("text", 0, None, FORMAT_FACTS["odt"]),
        ("heading", 2, None, "Tools"),
        ("text", 0, None, "Adze  and croze"),
        ("row", 0, None, "Wood | Oak"),
    ]


def test_epub_chapters_in_spine_order_with_their_headings():
    data = make_epub([("The Coast", FORMAT_FACTS["epub"]), ("The Islands", "Forty islets, most unnamed.")])
    doc = load_bytes(data, name="atlas.epub", kind=file_kind_of("atlas.epub"))
    assert outline(doc) == [
        ("heading", 1, None, "The Coast"),
        ("text", 0, None, FORMAT_FACTS["epub"]),
        ("heading", 1, None, "The Islands"),
        ("text", 0, None, "Forty islets, most unnamed."),
    ]


def test_notebook_cells_are_markdown_and_code_with_short_outputs():
    data = make_notebook(
        [
            ("markdown", "Glaciers\n========\n\nWe measure retreat per year.", None),
            (
                "code",
                f"def {FORMAT_FACTS['notebook']}(years):\n    return years * 12\n",
                [
                    {"output_type": "stream", "name": "stdout", "text": ["42\n"] + ["noise "] * 500},
                    {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo="}, "metadata": {}},
                ],
            ),
        ]
    )
    doc = load_bytes(data, name="ice.ipynb", kind=file_kind_of("ice.ipynb"))
    kinds = [(b.kind, b.level) for b in doc.blocks]
    assert kinds == [("heading", 1), ("text", 0), ("code", 0), ("text", 0)]
    assert doc.blocks[0].text == "# Glaciers"
    assert doc.blocks[2].text.startswith(f"def {FORMAT_FACTS['notebook']}(years):\n    return")
    output = doc.blocks[3].text
    assert output.startswith("Output: 42") and len(output) < 320 and "iVBOR" not in output
    assert not any('"cell_type"' in b.text or "cells[" in b.text for b in doc.blocks)  # not JSON paths


def test_markdown_setext_headings_indented_code_lists_and_front_matter():
    text = (
        "---\ntitle: Hive notes\ntags: [bees]\n---\n"
        "Apiary\n======\n\nIntro line one\ncontinues here.\n\n"
        "Inspections\n-----------\n\n    hive --check\n    hive --log\n\n"
        "- frames\n- queen\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n### Notes ###\n\n> quoted\n"
    )
    doc = load_bytes(text.encode(), name="bees.md", kind="markdown")
    assert outline(doc) == [
        ("code", 0, None, "---\ntitle: Hive notes\ntags: [bees]\n---"),
        ("heading", 1, None, "# Apiary"),
        ("text", 0, None, "Intro line one\ncontinues here."),
        ("heading", 2, None, "## Inspections"),
        ("code", 0, None, "    hive --check\n    hive --log"),
        ("row", 0, None, "- frames\n- queen"),
        ("row", 0, None, "| a | b |\n|---|---|\n| 1 | 2 |"),
        ("heading", 3, None, "### Notes"),
        ("text", 0, None, "> quoted"),
    ]


def test_markdown_chunks_follow_sections_keep_code_whole_and_carry_the_heading_path():
    code = "```python\n" + "\n".join(f"step_{i} = run({i})" for i in range(12)) + "\n```"
    text = (
        "Guide\n=====\n\nWhy this guide exists, in a few words.\n\n"
        "Setup\n-----\n\n" + " ".join(f"Word{i}" for i in range(40)) + "\n\n" + code + "\n\nAfter the code.\n"
    )
    blocks = load_bytes(text.encode(), name="guide.md", kind="markdown").blocks
    full, chunks = chunk_blocks(blocks, count_tokens=count_tokens, max_tokens=50, overlap_tokens=0)
    whole = [c for c in chunks if "```python" in c.text]
    assert len(whole) == 1 and whole[0].text.count("step_") == 12  # the code block was not split
    assert whole[0].heading == whole[0].section == "Guide > Setup"
    assert all(full[c.start : c.end] == c.text for c in chunks)
    assert [c.section for c in chunks][:2] == ["Guide", "Guide > Setup"]


def test_hostile_markdown_nesting_is_read_as_text_quickly():
    doc = load_bytes((">" * 50_000 + " deep\n").encode() * 20, name="deep.md", kind="markdown")
    assert doc.blocks and "deep" in doc.blocks[0].text


@pytest.mark.parametrize(
    "name, data, match",
    [
        ("bomb.xlsx", zip_bomb("xl/worksheets/sheet1.xml"), "zip bomb"),
        ("bomb.pptx", zip_bomb("ppt/slides/slide1.xml"), "zip bomb"),
        ("bomb.odt", zip_bomb("content.xml"), "zip bomb"),
        ("bomb.epub", zip_bomb("OEBPS/ch.xhtml"), "zip bomb"),
        ("locked.xlsx", OLE_LOCKED, "password-protected XLSX"),
        ("locked.pptx", OLE_LOCKED, "password-protected PPTX"),
        ("locked.odt", make_odt("<text:p>x</text:p>", encrypted=True), "password-protected"),
        ("drm.epub", make_epub([("A", "b")], drm=True), "DRM"),
        ("rows.xlsx", billion_row_xlsx(), "1,048,576 rows"),
        ("text.pptx", b"just some text", "not a valid PPTX"),
        ("broken.ipynb", b'{"cells": [', "not a valid notebook"),
        ("broken.odt", make_odt("", content="<office:document-content><unclosed"), "ODT is damaged"),
        (
            "broken.pptx",
            replace_member(make_pptx([("A", ["b"])]), "ppt/slides/slide1.xml", b"<p:sld><unclosed"),
            "PPTX is damaged",
        ),
        (
            "broken.xlsx",
            replace_member(
                make_xlsx({"S": [["a"]]}), "xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row"
            ),
            "XLSX is damaged",
        ),
        (
            "laughs.odt",
            make_odt("", content=LOL + "<office:document-content><office:body><office:text>&i;"),
            "ODT is damaged",
        ),
        (
            "laughs.xlsx",
            replace_member(
                make_xlsx({"S": [["a"]]}),
                "xl/worksheets/sheet1.xml",
                (
                    LOL + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                    '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&i;</t></is></c></row></sheetData>'
                    "</worksheet>"
                ).encode(),
            ),
            "XLSX is damaged",
        ),
    ],
)
def test_hostile_files_get_a_clear_error(name, data, match):
    with pytest.raises(IngestError, match=match):
        load_bytes(data, name=name, kind=file_kind_of(name))


def test_a_deck_over_the_page_limit_is_refused_before_its_slides_are_read():
    data = make_pptx([(f"Slide {i}", ["x"]) for i in range(6)])
    with pytest.raises(IngestError, match="too many slides: 6"):
        load_bytes(data, name="deck.pptx", kind="pptx", limits=LoadLimits(max_pages=5))
    assert load_bytes(data, name="deck.pptx", kind="pptx", limits=LoadLimits(max_pages=6)).n_pages == 6


def test_formats_are_ingested_through_the_worker_and_hostile_ones_cost_only_themselves(tmp_path):
    files = {
        "ferries.pptx": make_pptx([("Ferries", [FORMAT_FACTS["pptx"]])]),
        "yard.xlsx": make_xlsx({"Staff": [["name", "role"], [FORMAT_FACTS["xlsx"], "cooper"]]}),
        "barrels.odt": make_odt(f"<text:p>{FORMAT_FACTS['odt']}</text:p>"),
        "atlas.epub": make_epub([("The Coast", FORMAT_FACTS["epub"])]),
        "ice.ipynb": make_notebook([("code", f"def {FORMAT_FACTS['notebook']}():\n    pass\n", None)]),
        "rows.xlsx": billion_row_xlsx(),
        "bomb.pptx": zip_bomb("ppt/slides/slide1.xml"),
        "locked.xlsx": OLE_LOCKED,
        "deck.pptx": make_pptx([(f"Slide {i}", ["x"]) for i in range(4)]),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    services = build(
        Settings(data_dir=tmp_path / "data", ingest_max_pages=3, ingest_parse_seconds=60), load_model=False
    )
    try:
        results = {
            os.path.basename(r.path): r
            for r in services.documents.ingest_paths([tmp_path / n for n in files])
        }
        assert {n for n, r in results.items() if r.status == "added"} == {
            "ferries.pptx",
            "yard.xlsx",
            "barrels.odt",
            "atlas.epub",
            "ice.ipynb",
        }
        assert "rows" in results["rows.xlsx"].message and "zip bomb" in results["bomb.pptx"].message
        assert (
            "password" in results["locked.xlsx"].message and "too many slides" in results["deck.pptx"].message
        )
        hits = services.documents.search("ferry swell Portmagee Skellig", k=1)
        assert hits[0].source == "ferries.pptx" and hits[0].page == 1
        hits = services.documents.search(FORMAT_FACTS["xlsx"], k=1, mode="bm25")
        assert hits[0].source == "yard.xlsx" and hits[0].location == "sheet Staff"
    finally:
        services.close()


def file_kind_of(name: str) -> str:
    from pathlib import Path

    return file_kind(Path(name))
