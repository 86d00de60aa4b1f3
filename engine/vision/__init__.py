"""Images: CLIP embeddings, an image index, search by text or example, zero-shot labels.

Only ``clip`` imports open_clip and torch, and only when an image feature is first used.
"""

from .clip import ClipConfig, ClipEmbedder
from .loading import BadImageError
from .migrations import vision as vision_migrations
from .service import ImageService
from .store import StoredImage

__all__ = [
    "BadImageError",
    "ClipConfig",
    "ClipEmbedder",
    "ImageService",
    "StoredImage",
    "vision_migrations",
]
