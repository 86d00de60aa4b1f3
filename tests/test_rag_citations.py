"""Where a citation points and what the viewer shows around it: locations for pages, slides,
sheets and heading paths; the surrounding page or section with the cited span; a clear message
once the document is gone; the passage escaped for the page. Real SQLite, Chroma and MiniLM."""

from __future__ import annotations

import pytest
from formats_support import make_pptx, make_xlsx
from test_rag_support import make_pdf, open_services

from app.citations import CHUNK_ID, open_citation, source_link
from app.markup import passage_html
from engine.errors import NotFoundError
from engine.rag.citations import location


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    yield from open_services(tmp_path_factory)


def test_locations_read_as_a_reader_would_say_them():
    assert location("pdf", 3, None) == "page 3"
    assert location("pptx", 2, "Fares") == "slide 2: Fares"
    assert location("pptx", 4, "Slide 4") == "slide 4"  # an untitled slide
    assert location("xlsx", None, "Sheet: Staff > name | role") == "sheet Staff"
    assert location("markdown", None, "Guide > Setup") == "Guide > Setup"
    assert location("text", None, None) == ""


def _ingest(services, tmp_path, name: str, data: bytes, collection: str) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    [result] = services.documents.ingest_paths([path], collection=collection)
    assert result.status == "added", result.message
    return result.id


def test_a_markdown_citation_shows_its_section_and_neighbours_not_other_sections(services, tmp_path):
    filler = " ".join(f"Paragraph filler sentence number {i} about pond care." for i in range(30))
    text = (
        "Pond\n====\n\nIntro.\n\nPumps\n-----\n\n"
        + filler
        + "\n\nThe ZQ-7 pump draws 40 watts at full speed.\n\n"
        + filler
        + "\n\nFish\n----\n\nKoi need shade in summer.\n"
    )
    _ingest(services, tmp_path, "pond.md", text.encode(), "cite-md")
    [hit] = services.documents.search("ZQ-7 pump watts", k=1, collections=["cite-md"], mode="bm25")
    assert hit.location == "Pond > Pumps"
    found = services.documents.passage(hit.id)
    assert found.text[found.start : found.end] == hit.text and "ZQ-7" in hit.text
    assert found.location == "Pond > Pumps" and found.name == "pond.md"
    assert len(found.text) > len(hit.text)  # neighbours of the same section around it
    assert "Koi need shade" not in found.text  # another section is not
    title, body = open_citation(services, f"{hit.id} 1")
    assert "pond.md" in title and "Pumps" in title
    assert '<mark class="hearth-cited">' in body and "ZQ-7 pump draws 40 watts" in body


def test_a_pdf_citation_shows_its_whole_page(services, tmp_path):
    pdf = make_pdf([["Cover page words."], ["Second page opening line.", "The valve code is KX-14.", "End."]])
    _ingest(services, tmp_path, "valves.pdf", pdf, "cite-pdf")
    [hit] = services.documents.search("valve code KX-14", k=1, collections=["cite-pdf"], mode="bm25")
    assert hit.page == 2 and hit.location == "page 2"
    found = services.documents.passage(hit.id)
    assert "Second page opening line." in found.text and "Cover page" not in found.text


def test_slides_and_sheets_are_cited_by_number_and_name(services, tmp_path):
    deck = make_pptx([("Intro", ["Hello"]), ("Budget", ["The kiln budget is 9,400 euro."])])
    _ingest(services, tmp_path, "plan.pptx", deck, "cite-office")
    sheet = make_xlsx({"Kilns": [["kiln", "temp"], ["Anagama", 1300]]})
    _ingest(services, tmp_path, "kilns.xlsx", sheet, "cite-office")
    [slide] = services.documents.search("kiln budget euro", k=1, collections=["cite-office"], mode="bm25")
    assert slide.source == "plan.pptx" and slide.location == "slide 2: Budget"
    [row] = services.documents.search("Anagama", k=1, collections=["cite-office"], mode="bm25")
    assert row.source == "kilns.xlsx" and row.location == "sheet Kilns"
    assert "Anagama | 1300" in services.documents.passage(row.id).text


def test_a_citation_whose_document_is_gone_says_so(services, tmp_path):
    doc_id = _ingest(services, tmp_path, "gone.txt", b"The heron nests in the alder grove.", "cite-gone")
    [hit] = services.documents.search("heron alder", k=1, collections=["cite-gone"], mode="bm25")
    services.documents.delete(doc_id)
    with pytest.raises(NotFoundError, match="no longer in your documents"):
        services.documents.passage(hit.id)
    title, body = open_citation(services, f"{hit.id} 2")
    assert "no longer in your documents" in body and "<mark" in body


def test_the_viewer_escapes_everything_and_links_only_chunk_ids():
    html = passage_html('a <img src=x onerror="x()"> <script>b</script> c', 2, 29)
    assert "<img" not in html and "<script" not in html and "&lt;img" in html
    assert html.count("<mark") == 1 and html.index("<mark") < html.index("&lt;img") < html.index("</mark>")
    good = {"kind": "chunk", "id": "abc123-00004"}
    assert source_link(good, "**[1] x**") == "[**[1] x**](#cite-abc123-00004)"
    assert source_link({"kind": "chunk", "id": "x)](javascript:alert(1)"}, "L") == "L"
    assert source_link({"kind": "memory", "id": "m1"}, "L") == "L"
    assert not CHUNK_ID.match("../../etc") and not CHUNK_ID.match("a b")
