"""Shared parts of the Documents tests: small files of every type, generated here.

PDFs are written by hand (a few objects and an xref table), DOCX files by python-docx,
zip bombs by zipfile; nothing is downloaded.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from engine import Settings, build


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]]) -> bytes:
    """A valid PDF with one Helvetica text line per string, one page per list."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
            + f"] /Count {len(pages)} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        content = (
            "BT /F1 11 Tf 72 740 Td 14 TL " + " ".join(f"({_pdf_escape(x)}) Tj T*" for x in lines) + " ET"
        )
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream".encode())
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_encrypted_pdf(pages: list[list[str]], password: str = "s3cret") -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(pages)))
    writer.encrypt(user_password=password, owner_password="owner-" + password, algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def make_docx(path: Path, *, title: str, paragraphs: list[str], table: list[list[str]] | None = None) -> Path:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                t.cell(r, c).text = value
    document.save(str(path))
    return path


def make_zip_bomb(path: Path, megabytes: int = 40) -> Path:
    """A .docx-named zip whose one member inflates ~1000x (zeros compress that well)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(megabytes):
                member.write(block)
    return path


FACTS = {
    "pdf": "The lighthouse keeper logged seventeen storms during the winter of the survey.",
    "docx": "Quarterly revenue from the orchard cooperative rose because of the early cherry harvest.",
    "html": "The glassblowers of the old town anneal each vase overnight in a brick kiln.",
    "markdown": "Beekeepers inspect the brood frames every nine days during the swarm season.",
    "utf16": "Die Bergbahn fährt im Sommer stündlich zur Gipfelstation über dem Gletscher.",
    "latin1": "Le boulanger prépare les croissants à l'aube, près de la rivière gelée.",
    "gb2312": "长城是古代中国为了防御北方游牧民族而修建的军事工程。",
    "csv": "Ottoline Brackenbury",
    "json": "saffron risotto",
    "code": "def compute_tidal_range(high_water, low_water):",
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """One small file per supported type; each carries one distinctive fact from FACTS."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "pdf": folder / "survey.pdf",
        "docx": folder / "orchard.docx",
        "html": folder / "glass.html",
        "markdown": folder / "bees.md",
        "utf16": folder / "bergbahn.txt",
        "latin1": folder / "boulanger.txt",
        "gb2312": folder / "changcheng.txt",
        "csv": folder / "staff.csv",
        "json": folder / "menu.json",
        "code": folder / "tides.py",
    }
    files["pdf"].write_bytes(
        make_pdf(
            [
                ["Survey of the northern coast.", "Page one covers the harbour."],
                ["Winter notes.", FACTS["pdf"]],
            ]
        )
    )
    make_docx(
        files["docx"],
        title="Cooperative report",
        paragraphs=[FACTS["docx"]],
        table=[["Fruit", "Tonnes"], ["Cherries", "41"]],
    )
    files["html"].write_text(
        "<html><head><title>Old town crafts</title><style>p{color:red}</style></head><body>"
        "<script>document.write('INJECTED SCRIPT TEXT')</script><h1>Glass</h1>"
        f"<p>{FACTS['html']}</p><div style='display:none'>HIDDEN DIV TEXT</div></body></html>",
        encoding="utf-8",
    )
    files["markdown"].write_text(
        f"# Apiary\n\n## Inspections\n\n{FACTS['markdown']}\n\n```\nhive --check\n```\n", encoding="utf-8"
    )
    files["utf16"].write_bytes(FACTS["utf16"].encode("utf-16"))  # with a BOM
    files["latin1"].write_bytes((FACTS["latin1"] + " Élodie aime le café crème.\n").encode("latin-1"))
    files["gb2312"].write_bytes(
        (FACTS["gb2312"] + "它东起山海关，西至嘉峪关，全长数千公里。\n").encode("gb2312")
    )
    files["csv"].write_text(
        f"name,role,city\n{FACTS['csv']},lighthouse engineer,Aberdeen\nTom Pike,cook,Leeds\n",
        encoding="utf-8",
    )
    files["json"].write_text(
        '{"restaurant": {"name": "Trattoria Verde", "dishes": [{"name": "saffron risotto", '
        '"price": 14}, {"name": "tiramisu", "price": 7}]}}',
        encoding="utf-8",
    )
    files["code"].write_text(
        f'"""Tide tables."""\n\n\n{FACTS["code"]}\n    return high_water - low_water\n', encoding="utf-8"
    )
    return files


def open_services(tmp_path_factory, *, load_model: bool = False):
    """Real SQLite, real Chroma, real bundled MiniLM (and the bundled GGUF when asked).

    Test modules wrap this in a module-scoped fixture, so the models load once per module.
    """
    data = tmp_path_factory.mktemp("rag") / "data"
    services = build(Settings(data_dir=data, n_ctx=2048), load_model=load_model)
    assert not services.warnings, services.warnings
    yield services
    services.close()


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
