"""Documents (local RAG): ingest files, search them (dense + BM25, fused), answer with sources.

Parsing libraries live one per loader module and are imported only when needed.
"""

from ..library import DEFAULT_COLLECTION, IMAGE_SUFFIXES, check_collection_name, is_image
from .files import clean_name, expand, split_images
from .migrations import rag as rag_migrations
from .rewrite import SearchOptions, model_generator
from .service import DocumentService, IngestLimits
from .store import DocumentInfo

__all__ = [
    "DEFAULT_COLLECTION",
    "IMAGE_SUFFIXES",
    "DocumentInfo",
    "DocumentService",
    "IngestLimits",
    "SearchOptions",
    "check_collection_name",
    "clean_name",
    "expand",
    "is_image",
    "model_generator",
    "rag_migrations",
    "split_images",
]
