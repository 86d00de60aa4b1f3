"""Reading image files safely with Pillow: one clear error per bad file.

Guards, per image (never by changing Pillow's global settings):
- size: empty files and files over ``max_upload_bytes`` are refused before decoding;
- decompression bombs: the pixel count declared in the header is checked before any
  pixel is decoded (Pillow's own DecompressionBombError is caught too);
- content: the format Pillow detects must be PNG, JPEG, WebP, GIF or BMP, whatever the
  file name says; truncated or corrupt data is reported, not half-read;
- animations: only the first frame is decoded (frames are never counted);
- EXIF orientation is applied, transparency is flattened onto white.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import VisionError

#: Pillow format -> file extension of the stored copy
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
#: largest image decoded, in pixels (Pillow's default limit: about 9,460 x 9,460)
MAX_PIXELS = 89_478_485
#: EXIF orientations that swap width and height
_TRANSPOSED = {5, 6, 7, 8}
_CAPTION_KEYS = ("Description", "description", "Title", "title", "Comment", "comment", "Caption", "caption")
MAX_CAPTION = 500


class BadImageError(VisionError):
    """An image file that cannot be read; the message says why and what to do."""

    title = "Could not read image"


@dataclass(frozen=True, kw_only=True)
class LoadedImage:
    """A decoded, upright RGB image plus what Hearth stores about its file."""

    image: Any  # PIL.Image.Image, mode RGB
    data: bytes
    sha256: str
    format: str
    #: size of the upright image at full resolution
    width: int
    height: int
    #: text embedded in the file (PNG text, EXIF description, comment), may be ""
    caption: str

    @property
    def extension(self) -> str:
        return FORMATS[self.format]


def read_image(path: Path, *, max_bytes: int, decode_size: int | None = None) -> LoadedImage:
    """Read, check and decode one image file; raise BadImageError with the reason.

    ``decode_size``: the side the model sees. JPEGs are decoded at a reduced scale and other
    huge images box-reduced, never below twice this side, because full-size decoding and
    resizing would otherwise dominate ingest.
    """
    data = read_bytes(Path(path), max_bytes)
    return decode_image(data, name=Path(path).name, decode_size=decode_size)


def decode_image(data: bytes, *, name: str, decode_size: int | None = None) -> LoadedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = _check_header(img, name)
            orientation = _orientation(img)
            width, height = (img.height, img.width) if orientation in _TRANSPOSED else img.size
            caption = _embedded_caption(img)
            if decode_size and fmt in ("JPEG", "MPO"):
                img.draft("RGB", (decode_size * 2, decode_size * 2))
            img.load()  # first frame only: animated files are never walked
            upright = _upright_rgb(_shrink(img, decode_size), orientation)
    except BadImageError:
        raise
    except Image.DecompressionBombError as e:
        raise BadImageError(
            f"{name} declares far more pixels than Hearth decodes ({e}); refused without decoding (a "
            f"possible decompression bomb). Resize it below {MAX_PIXELS / 1e6:.0f} megapixels if it is a real picture."
        ) from e
    except UnidentifiedImageError as e:
        raise BadImageError(
            f"{name} is not an image Hearth can read (its content is not PNG, JPEG, WebP, GIF or BMP, "
            "whatever its name says). Open it in an image viewer and save it as PNG or JPEG."
        ) from e
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise many types on malformed data
        raise BadImageError(
            f"{name} is truncated or corrupt ({e}). Re-download or re-export it, then add it again."
        ) from e
    return LoadedImage(
        image=upright,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=width,
        height=height,
        caption=caption,
    )


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing missing, empty and oversized files with a clear message."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BadImageError(f"{path.name} is not a file.")
        if size == 0:
            raise BadImageError(f"{path.name} is empty (0 bytes). Pick the image file itself.")
        if size > max_bytes:
            raise BadImageError(
                f"{path.name} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit. "
                "Resize it, or raise the limit (Settings.max_upload_bytes)."
            )
        return path.read_bytes()
    except FileNotFoundError as e:
        raise BadImageError(f"{path} does not exist.") from e
    except OSError as e:
        raise BadImageError(f"{path.name} could not be read: {e.strerror or e}.") from e


def _check_header(img: Any, name: str) -> str:
    fmt = (img.format or "").upper()
    if fmt not in FORMATS:
        raise BadImageError(
            f"{name} is a {fmt or 'unknown'} image; Hearth takes PNG, JPEG, WebP, GIF and BMP. "
            "Convert it to PNG or JPEG first."
        )
    width, height = img.size
    if width <= 0 or height <= 0:
        raise BadImageError(f"{name} declares an empty size ({width} x {height}); the file is corrupt.")
    if width * height > MAX_PIXELS:
        raise BadImageError(
            f"{name} declares {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} megapixels), over "
            f"the {MAX_PIXELS / 1e6:.0f} megapixel limit; refused without decoding (a possible "
            "decompression bomb). Resize it below the limit if it is a real picture."
        )
    return fmt


def _shrink(img: Any, decode_size: int | None) -> Any:
    """Box-average huge images down to at least twice the model's side before the model's own
    (bicubic) resize: the same picture for the model, at a fraction of the resize cost."""
    if not decode_size or img.mode not in ("RGB", "RGBA", "L", "LA"):
        return img
    factor = min(img.size) // (2 * decode_size)
    return img.reduce(factor) if factor >= 2 else img


def _orientation(img: Any) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - broken EXIF blocks are common; the picture still counts
        return 1


def _upright_rgb(img: Any, orientation: int) -> Any:
    from PIL import Image, ImageOps

    if orientation != 1:
        img = ImageOps.exif_transpose(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _embedded_caption(img: Any) -> str:
    """Text the file carries about itself: PNG text chunks, GIF/JPEG comments, EXIF description."""
    parts: list[str] = []
    for key in _CAPTION_KEYS:
        value = img.info.get(key)
        if value:
            parts.append(_text(value))
    try:
        exif = img.getexif()
        for tag in (0x010E, 0x9C9B, 0x9C9C):  # ImageDescription, XPTitle, XPComment
            if exif.get(tag):
                parts.append(_text(exif[tag], utf16=tag != 0x010E))
    except Exception:  # noqa: BLE001 - unreadable EXIF only means no caption from it
        pass
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return " · ".join(seen)[:MAX_CAPTION]


def _text(value: Any, *, utf16: bool = False) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-16-le" if utf16 else "utf-8", errors="replace")
    elif isinstance(value, tuple) and utf16:  # XP* tags may arrive as a tuple of byte values
        value = bytes(value).decode("utf-16-le", errors="replace")
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return " ".join(text.replace("\x00", " ").split())
