"""Loaders, chunking, fusion and file names: pure logic on generated files (no model)."""

from __future__ import annotations

import pytest
from test_rag_support import FACTS, make_docx, make_encrypted_pdf, make_pdf, make_zip_bomb, write_corpus

from engine.errors import IngestError
from engine.rag.blocks import Block
from engine.rag.chunking import chunk_blocks
from engine.rag.files import clean_name
from engine.rag.fusion import reciprocal_rank_fusion
from engine.rag.keyword import tokenize
from engine.rag.loaders import file_kind, load_bytes


def load(path):
    return load_bytes(path.read_bytes(), name=path.name, kind=file_kind(path))


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_pdf_text_per_page(corpus):
    doc = load(corpus["pdf"])
    assert doc.kind == "pdf" and doc.n_pages == 2
    assert [b.page for b in doc.blocks] == [1, 2]
    assert FACTS["pdf"] in doc.blocks[1].text


def test_pdf_with_empty_user_password_opens_and_real_password_is_refused(tmp_path):
    opened = load_bytes(make_encrypted_pdf([["Open sesame text."]], password=""), name="open.pdf", kind="pdf")
    assert "Open sesame" in opened.blocks[0].text
    with pytest.raises(IngestError, match="password"):
        load_bytes(make_encrypted_pdf([["Secret text."]]), name="locked.pdf", kind="pdf")


@pytest.mark.parametrize(
    "data, match",
    [
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", "damaged|no text"),
        (b"hello, not a pdf", "not a PDF"),
    ],
)
def test_bad_pdf_gets_a_clear_error(data, match):
    with pytest.raises(IngestError, match=match):
        load_bytes(data, name="broken.pdf", kind="pdf")


def test_pdf_without_text_says_ocr():
    with pytest.raises(IngestError, match="OCR"):
        load_bytes(make_pdf([[]]), name="scan.pdf", kind="pdf")


def test_docx_headings_paragraphs_and_tables(corpus):
    doc = load(corpus["docx"])
    assert doc.blocks[0].kind == "heading" and doc.blocks[0].text == "Cooperative report"
    assert any(FACTS["docx"] == b.text for b in doc.blocks)
    assert [b.text for b in doc.blocks if b.kind == "row"] == ["Fruit | Tonnes", "Cherries | 41"]


def test_docx_zip_bomb_and_non_zip_are_refused(tmp_path):
    with pytest.raises(IngestError, match="zip bomb"):
        load(make_zip_bomb(tmp_path / "bomb.docx"))
    with pytest.raises(IngestError, match="not a valid DOCX"):
        load_bytes(b"PK\x03\x04 truncated", name="bad.docx", kind="docx")
    with pytest.raises(IngestError, match=r"\.doc"):
        load_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, name="old.docx", kind="docx")


def test_html_keeps_visible_text_and_structure_only(corpus):
    doc = load(corpus["html"])
    text = "\n".join(b.text for b in doc.blocks)
    assert FACTS["html"] in text
    assert "INJECTED" not in text and "HIDDEN DIV" not in text and "color:red" not in text
    assert ("heading", "Glass") in [(b.kind, b.text) for b in doc.blocks]


def test_html_of_only_scripts_is_refused():
    page = b"<html><body>" + b"<script>var a = 'x';</script>" * 200 + b"</body></html>"
    with pytest.raises(IngestError, match="no visible text"):
        load_bytes(page, name="scripts.html", kind="html")


@pytest.mark.parametrize(
    "key, encoding",
    [("utf16", "utf-16"), ("latin1", "cp1252"), ("gb2312", "gb18030")],
)
def test_text_encodings_are_detected(corpus, key, encoding):
    doc = load(corpus[key])
    assert doc.encoding == encoding
    assert FACTS[key] in doc.blocks[0].text


def test_utf8_with_a_few_stray_bytes_stays_utf8_and_nul_padding_is_dropped():
    german = "Grüße aus Köln: die schöne Straße am Rhein.\n" * 50
    doc = load_bytes(german.encode() + "café\n".encode("latin-1"), name="joined.log", kind="text")
    assert doc.encoding == "utf-8" and "Grüße aus Köln" in doc.blocks[0].text  # not cp1250's "GrĂĽĂźe"
    latin1 = "Grüße aus Köln: die schöne Straße am Rhein.\n" * 50
    assert load_bytes(latin1.encode("latin-1"), name="old.txt", kind="text").encoding != "utf-8"
    padded = b"12:00 service started\n" + b"\x00" * 4096 + b"12:05 service restarted\n"
    text = load_bytes(padded, name="crash.log", kind="text").blocks[0].text
    assert text == "12:00 service started\n12:05 service restarted"
    with pytest.raises(IngestError, match="binary data"):  # NULs in what is not text: still binary
        load_bytes(bytes(range(256)) * 8, name="blob.txt", kind="text")


def test_chunks_hold_no_control_characters_and_no_giant_words():
    hostile = "Notes \x1b]0;PWNED\x07 and \x1b]52;c;cHduZWQ=\x07 \x1b[31mred\x9b text."
    text, chunks = chunk_blocks([Block(text=hostile)], count_tokens=lambda t: len(t.split()))
    assert text == "Notes ]0;PWNED and ]52;c;cHduZWQ= [31mred text." and chunks[0].text == text
    # a tokenizer that makes one token of any word (as an embedder does of one it cannot split)
    fasta = ">GENE-62 isolated in Lisbon\n" + "ACGT" * 100_000
    _, chunks = chunk_blocks([Block(text=fasta)], count_tokens=lambda t: len(t.split()), max_tokens=200)
    assert (
        max(len(c.text) for c in chunks) <= 200 * 30
        and "".join(c.text for c in chunks).count("ACGT") >= 99_000
    )


def test_utf16_without_bom_and_utf8():
    doc = load_bytes(
        "Plain ASCII-ish text in UTF-16 LE, no BOM.".encode("utf-16-le"), name="a.txt", kind="text"
    )
    assert doc.blocks[0].text.startswith("Plain ASCII")
    assert load_bytes("naïve café ✓".encode(), name="b.txt", kind="text").encoding == "utf-8"


def test_binary_with_a_txt_name_is_refused():
    import random

    rng = random.Random(1)
    data = bytes(rng.randrange(256) for _ in range(4000))
    with pytest.raises(IngestError, match="binary"):
        load_bytes(data, name="notes.txt", kind="text")
    with pytest.raises(IngestError, match="binary"):
        load_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, name="photo.txt", kind="text")


def test_csv_header_is_the_heading_of_every_row_chunk(corpus):
    doc = load(corpus["csv"])
    assert doc.blocks[0] == Block(text="name | role | city", kind="heading", level=1)
    _, chunks = chunk_blocks(
        doc.blocks + [Block(text=f"row {i} | x | y", kind="row") for i in range(60)],
        count_tokens=words,
        max_tokens=40,
        overlap_tokens=0,
    )
    assert len(chunks) > 2
    assert all(c.heading == "name | role | city" for c in chunks[1:])


def test_json_is_flattened_to_paths(corpus):
    lines = [b.text for b in load(corpus["json"]).blocks]
    assert "restaurant.dishes[0].name: saffron risotto" in lines
    assert "restaurant.dishes[1].price: 7" in lines
    broken = load_bytes(b'{"a": [1, 2', name="broken.json", kind="json")
    assert broken.blocks and "not valid JSON" in broken.notes[0]


def test_markdown_code_fences_and_headings(corpus):
    doc = load(corpus["markdown"])
    assert [(b.kind, b.level) for b in doc.blocks] == [
        ("heading", 1),
        ("heading", 2),
        ("text", 0),
        ("code", 0),
    ]


def test_unsupported_formats_name_what_to_do():
    with pytest.raises(IngestError, match="export it as .csv"):
        load_bytes(b"PK\x03\x04", name="sheet.xls", kind="unknown")
    with pytest.raises(IngestError, match="Images"):
        load_bytes(b"\x89PNG", name="x.png", kind="image")


# chunking


def test_chunks_are_exact_spans_within_budget_and_never_cross_headings_or_pages():
    blocks = [Block(text="# Guide", kind="heading", level=1), Block(text="Intro words here.")]
    blocks += [Block(text="## Setup", kind="heading", level=2)]
    blocks += [Block(text=" ".join(f"Sentence {i}-{j} has five words." for j in range(3))) for i in range(3)]
    blocks += [Block(text=" ".join(f"Long {j} sentence has five." for j in range(12)))]  # over budget: split
    blocks += [Block(text="Page two text.", page=2), Block(text="More page two.", page=2)]
    text, chunks = chunk_blocks(blocks, count_tokens=words, max_tokens=30, overlap_tokens=8)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.n_tokens <= 30
    setup = [c for c in chunks if c.heading == "Guide > Setup"]
    assert setup and all("Intro" not in c.text for c in setup)
    assert chunks[0].text.startswith("# Guide") and chunks[0].heading == ""
    page_two = [c for c in chunks if "Page two" in c.text]
    assert len(page_two) == 1 and "Long" not in page_two[0].text and page_two[0].page == 2
    # a paragraph split at sentences repeats a little text (overlap), but never whole chunks
    spans = [(c.start, c.end) for c in setup if "Long" in c.text]
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert all(b[0] > a[0] for a, b in zip(spans, spans[1:]))


def test_pathological_one_line_input_is_split_by_words_and_characters():
    blob = "x" * 5000

    def chars(t: str) -> int:  # like a subword tokenizer on a run of one letter: many tokens
        return max(1, len(t) // 3)

    text, chunks = chunk_blocks(
        [Block(text="word " * 400 + blob)], count_tokens=chars, max_tokens=50, overlap_tokens=0
    )
    assert len(chunks) > 30 and all(c.n_tokens <= 50 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


# names, keyword tokens, fusion


def test_clean_name_drops_path_parts_and_control_characters():
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("..\\..\\boot.ini") == "boot.ini"
    assert clean_name("re\x00port\n.pdf") == "re port .pdf"
    assert clean_name("../..") == "unnamed"
    assert clean_name("naïve résumé ☃.md") == "naïve résumé ☃.md"


def test_tokenize_keeps_identifiers_whole_and_in_parts():
    tokens = tokenize("Reset the ZX-4471-QK valve via parse_args()", frozenset({"the", "via"}))
    assert "zx-4471-qk" in tokens and "4471" in tokens and "parse_args" in tokens and "the" not in tokens
    assert "长城" in tokenize("长城是")


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "d"]])
    assert [i for i, _ in fused][:2] == ["b", "c"] or [i for i, _ in fused][:2] == ["c", "b"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 63) or fused[0][1] == pytest.approx(1 / 61 + 1 / 63)
    assert {i for i, _ in fused} == {"a", "b", "c", "d"}
    assert reciprocal_rank_fusion([["x", "y"]]) == [("x", 1 / 61), ("y", 1 / 62)]


def test_docx_generator_round_trip(tmp_path):
    path = make_docx(tmp_path / "t.docx", title="T", paragraphs=["p"])
    assert file_kind(path) == "docx"


# The shape of a Sphinx page (Python's own docs): the content in role="main", a sidebar and two
# related-links bars as navigation, a footer, permalinks after each heading, a table of values.
SPHINX_PAGE = """<!DOCTYPE html><html><head><title>logging — Logging facility</title></head><body>
<div class="mobile-nav"><nav class="nav-content" role="navigation"><a href="#">Table of Contents</a>
<ul><li><a href="#levels">Logging Levels</a></li></ul></nav></div>
<div class="related" role="navigation"><h3>Navigation</h3><ul><li><a href="x.html">next</a> |</li></ul></div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">
<section id="logging"><h1>logging — Logging facility<a class="headerlink" href="#logging">¶</a></h1>
<p>This module defines functions and classes which implement a flexible event logging system.</p>
<section id="levels"><h2>Logging Levels<a class="headerlink" href="#levels">¶</a></h2>
<p>The numeric values of logging levels are given in the following table.</p>
<table class="docutils"><thead><tr><th><p>Level</p></th><th><p>Numeric value</p></th></tr></thead>
<tbody><tr><td><p><code>CRITICAL</code></p></td><td><p>50</p></td></tr>
<tr><td><p><code>WARNING</code></p></td><td><p>30</p></td></tr></tbody></table>
</section></section></div></div></div>
<div class="sphinxsidebar" role="navigation" aria-label="main navigation"><h3>Previous topic</h3>
<p><a href="getopt.html">getopt — C-style parser</a></p><h3>This Page</h3><ul><li>Report a Bug</li>
<li>Show Source</li></ul></div></div>
<div class="related" role="navigation"><h3>Navigation</h3></div>
<div class="footer">© Copyright 2001-2023, Python Software Foundation. Last updated on Mar 25, 2023.</div>
</body></html>"""


def test_html_keeps_the_pages_content_without_its_chrome():
    doc = load_bytes(SPHINX_PAGE.encode(), name="logging.html", kind="html")
    text = "\n".join(b.text for b in doc.blocks)
    for chrome in ("Table of Contents", "Navigation", "Previous topic", "Report a Bug", "Copyright", "¶"):
        assert chrome not in text
    assert [(b.kind, b.text) for b in doc.blocks if b.kind == "heading"] == [
        ("heading", "logging — Logging facility"),
        ("heading", "Logging Levels"),
    ]
    # a table's value stays beside its name, one row a line
    rows = [b.text for b in doc.blocks if b.kind == "row"]
    assert rows == ["Level | Numeric value", "CRITICAL | 50", "WARNING | 30"]


def test_html_without_marked_content_drops_only_its_landmarks():
    page = (
        """<html><head><title>Glassblowing notes</title></head><body>
    <header><a href="/">Home</a> <a href="/blog">Blog</a></header>
    <nav><a href="/a">Archive</a></nav>
    <header><h1>Annealing glass</h1></header>
    <p>Anneal soda-lime glass at 510 degrees for an hour per quarter inch.</p>
    <aside><p>Subscribe to the newsletter</p></aside>
    <table><tr><td><p>A layout cell that holds a whole column of the page. """
        + "More text. " * 60
        + """</p></td>
    <td>Sidebar</td></tr></table>
    <footer>Contact us</footer></body></html>"""
    )
    doc = load_bytes(page.encode(), name="notes.html", kind="html")
    text = "\n".join(b.text for b in doc.blocks)
    assert "510 degrees" in text and ("heading", "Annealing glass") in [(b.kind, b.text) for b in doc.blocks]
    for chrome in ("Home", "Archive", "Subscribe", "Contact us"):
        assert chrome not in text
    assert "A layout cell" in text and not any(b.kind == "row" for b in doc.blocks)  # layout, read as text


def test_html_whose_main_holds_little_of_the_page_keeps_the_page():
    body = "<p>" + "The real article text sits outside main on this page. " * 30 + "</p>"
    page = f"<html><body><main><p>Only a search box</p></main>{body}</body></html>"
    text = "\n".join(b.text for b in load_bytes(page.encode(), name="odd.html", kind="html").blocks)
    assert "real article text" in text and "Only a search box" in text


def test_html_whose_unclosed_divs_nest_thousands_deep_reads_every_post():
    """A broken page (a forum export whose <div>s never close) nests deeper with each post.
    Marks inserted into the tree walked each tag's subtree: 20,000 posts took 52 s."""
    page = "<html><body>" + "".join(f"<div class=post><p>Post {i} about pumps.</p>" for i in range(3000))
    doc = load_bytes(page.encode(), name="forum.html", kind="html")
    assert [b.text for b in doc.blocks] == [f"Post {i} about pumps." for i in range(3000)]


def test_a_pdf_whose_page_text_cannot_be_read_says_so_not_ocr():
    """A page whose content inflates past pypdf's limit (a flate bomb) was reported as a scan
    that needs OCR; the reader's own reason is what the user needs."""
    import io
    import zlib

    from pypdf import PdfWriter
    from pypdf.generic import NameObject, StreamObject

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf([["A normal line."]])))
    bomb = StreamObject()
    line = b"%" + b"0" * (1 << 20) + b"\n"
    packer = zlib.compressobj(9)
    bomb._data = b"".join(packer.compress(line) for _ in range(80)) + packer.flush()  # 80 MB inflated
    bomb[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer.pages[0][NameObject("/Contents")] = writer._add_object(bomb)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(IngestError, match="cannot be read") as refused:
        load_bytes(out.getvalue(), name="bomb.pdf", kind="pdf")
    assert "OCR" not in str(refused.value) and "Limit" in str(refused.value)
