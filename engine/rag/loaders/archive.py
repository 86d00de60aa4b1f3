"""Office files, e-books and notebooks-in-a-zip: checks made before any parser opens one.

DOCX, PPTX, XLSX, ODT and EPUB are zip archives of XML. A hostile one can claim to unpack
to gigabytes (a zip bomb) or hold millions of members; a password-protected Office file is
not a zip at all but an OLE compound file. Each is refused here with a message that says
what to do, before a library gets a chance to run out of memory on it.
"""

from __future__ import annotations

import io
import zipfile

from ...errors import IngestError

#: a real office file unpacks to a few times its size; refuse archives that claim far more
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_RATIO = 100
MAX_MEMBERS = 10_000
#: an OLE compound file: old binary Office formats, and Office files saved with a password
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def refuse_encrypted_office(data: bytes, name: str, *, fmt: str, old: str) -> None:
    """Refuse an OLE file given an Office suffix: ``old`` is the binary format's suffix (.doc)."""
    if data.startswith(OLE_MAGIC):
        raise IngestError(
            f"{name}: this is an old binary Office file ({old}) or a password-protected {fmt}. "
            f"Open it in its application or LibreOffice, save it as an unprotected {fmt} and add it again."
        )


def check_zip(data: bytes, name: str, *, fmt: str = "DOCX") -> zipfile.ZipFile:
    """The archive, opened; refused when it is not a zip or would unpack to far more than it weighs.

    zipfile never inflates a member past its declared size, so checking the declared sizes is
    enough to bound memory. The caller closes the archive.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise IngestError(
            f"{name}: not a valid {fmt} (it is not a zip archive: {e}). Re-save it as {fmt} and try again."
        ) from e
    members = archive.infolist()
    unpacked = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if len(members) > MAX_MEMBERS or unpacked > MAX_UNPACKED_BYTES or unpacked / packed > MAX_RATIO:
        archive.close()
        raise IngestError(
            f"{name}: refused, this archive would unpack to {unpacked / 2**20:,.0f} MB from "
            f"{len(data) / 2**20:,.1f} MB in {len(members):,} parts (a zip bomb?). Real documents never do that."
        )
    return archive


def read_member(archive: zipfile.ZipFile, member: str, name: str, *, fmt: str) -> bytes:
    """One member's bytes; a missing or damaged member is the file's error, not a crash."""
    try:
        return archive.read(member)
    except KeyError as e:
        raise IngestError(f"{name}: not a valid {fmt}: it has no {member}. Re-save it and try again.") from e
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise IngestError(f"{name}: the {fmt} is damaged ({member}: {e}). Re-save it and try again.") from e


def damaged(name: str, fmt: str, error: BaseException) -> IngestError:
    return IngestError(
        f"{name}: the {fmt} is damaged and cannot be read ({type(error).__name__}: {error}). "
        "Re-save it from its application and try again."
    )


def safe_xml(data: bytes, name: str, *, fmt: str):
    """Parse XML without entities, network or huge text nodes (lxml's own limits stay on)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as e:
        raise damaged(name, fmt, e) from e
