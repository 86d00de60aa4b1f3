"""The EngineError tree: every error the engine lets reach a user.

The UI and the command line turn these (and only these) into friendly messages;
anything else is a bug and is shown as one. Each error's message says what went
wrong and what to do about it. Raise them with ``raise ... from e``.

EngineError
├── ConfigError          a setting or generation value is invalid (names the field and range)
├── ModelError           no model loaded, or a model file is missing / truncated / not GGUF
├── GenerationError      the backend failed while generating
├── StoreError           the database could not be read or written
│   ├── NotFoundError    a conversation, message, preset or document does not exist
│   └── DataDirInUseError another Hearth process holds the data directory (names it)
├── IngestError          a file could not be ingested (corrupt, encrypted, too big, ...)
├── RetrievalError       the document or image index could not be searched
├── VisionError          CLIP is unavailable or an image could not be read
└── MemoryError_         a memory operation failed (block over its limit, bad tool call)
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine reports to a user."""

    #: a short, stable category the UI may show as a heading
    title = "Error"


class ConfigError(EngineError, ValueError):
    title = "Invalid setting"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class ModelError(EngineError):
    title = "Model problem"


class GenerationError(EngineError):
    title = "Generation failed"


class StoreError(EngineError):
    title = "Storage problem"


class NotFoundError(StoreError, LookupError):
    title = "Not found"


#: a turn with images on a model that cannot see them (the chat checks first; the backend too)
NO_VISION = (
    "The loaded model cannot see images. Load a vision model with its projector "
    "(--mmproj FILE, or the Model tab) to send images to it."
)


class DataDirInUseError(StoreError):
    title = "Data directory in use"


class IngestError(EngineError):
    title = "Could not add file"


class RetrievalError(EngineError):
    title = "Search failed"


class VisionError(EngineError):
    title = "Images unavailable"


class MemoryError_(EngineError):  # noqa: N801, N818 - avoid shadowing the builtin MemoryError
    title = "Memory problem"
