"""Shared parts of the vision tests: a tiny open_clip model and generated images.

No registry ships CLIP weights, so a tiny CLIP (one layer per tower, width 32, 32x32
images, random weights) is saved as a ``local-dir:`` folder (open_clip_config.json plus
a state dict, about 6 MB) and loaded through the same code users run. Every image is
drawn here with Pillow; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import random
import struct
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing download must fail fast, never hang


TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {}}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


# images


def draw(seed: int, size: tuple[int, int] = (64, 48)):
    """A distinct picture per seed: a coloured background with a few rectangles and ellipses."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    color = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    img = Image.new("RGB", size, color())
    pen = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        x1, y1 = x0 + rng.randrange(8, size[0] // 2), y0 + rng.randrange(8, size[1] // 2)
        (pen.rectangle if rng.random() < 0.5 else pen.ellipse)([x0, y0, x1, y1], fill=color())
    return img


def make_image(
    path: Path, seed: int, fmt: str | None = None, size: tuple[int, int] = (64, 48), **save
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw(seed, size).save(path, format=fmt, **save)
    return path


def bomb_png(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A valid PNG header declaring a huge image, with a tiny (bogus) data stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def truncated_jpeg(path: Path, seed: int = 7) -> Path:
    import io

    buf = io.BytesIO()
    draw(seed, (256, 192)).save(buf, format="JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def animated_gif(path: Path, frames: int = 2000) -> Path:
    from PIL import Image

    first = draw(11, (32, 32))
    others = [Image.new("RGB", (32, 32), (i % 256, (i * 7) % 256, (i * 13) % 256)) for i in range(frames - 1)]
    first.save(path, format="GIF", save_all=True, append_images=others, duration=20, loop=0)
    return path


def rotated_with_exif(path: Path, seed: int, orientation: int = 6) -> tuple[Path, object]:
    """Save pixels stored sideways plus an EXIF tag saying how to turn them upright.

    Returns the path and the upright picture (what a viewer shows).
    """
    from PIL import Image

    upright = draw(seed, (64, 40))
    # orientation 6 means "rotate 90 degrees clockwise to view": store it turned the other way
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, format="PNG", exif=exif.tobytes())
    return path, upright


# a test of the helpers themselves: the tiny model loads through the users' code path


def test_tiny_clip_loads_through_local_dir(vservices, tiny_clip_dir):
    ok, message = vservices.images.available()
    assert ok and str(tiny_clip_dir) in message
    assert not vservices.images.embedder.loaded  # available() checks files, it does not load CLIP
    vectors = vservices.images.embedder.embed_texts(["a red square", "a blue circle"])
    assert len(vectors) == 2 and len(vectors[0]) == TINY_CLIP["embed_dim"]
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-5 for v in vectors)  # L2-normalised
    assert vservices.images.embedder.image_size == 32
