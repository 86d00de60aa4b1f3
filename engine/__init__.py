"""Hearth's engine: everything but the UI. Never imports gradio."""

from .config import GenerationConfig, Settings
from .errors import (
    ConfigError,
    EngineError,
    GenerationError,
    IngestError,
    ModelError,
    NotFoundError,
    RetrievalError,
    StoreError,
    VisionError,
)
from .factory import Services, build
from .types import ContextReport, Done, Hit, Message, Sources, TextDelta, TurnStarted, Usage

__all__ = [
    "ConfigError",
    "ContextReport",
    "Done",
    "EngineError",
    "GenerationConfig",
    "GenerationError",
    "Hit",
    "IngestError",
    "Message",
    "ModelError",
    "NotFoundError",
    "RetrievalError",
    "Services",
    "Settings",
    "Sources",
    "StoreError",
    "TextDelta",
    "TurnStarted",
    "Usage",
    "VisionError",
    "build",
]
