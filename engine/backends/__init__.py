"""Model backends. Only ``llama_cpp.py`` imports llama_cpp, and only when used."""

from .base import Backend, ModelInfo

__all__ = ["Backend", "ModelInfo"]
