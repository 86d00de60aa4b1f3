"""SQLite storage: the database, migrations, conversations, messages, presets."""

from .conversations import ConversationStore, StoredConversation, StoredMessage
from .db import Database
from .migrations import core as core_migrations
from .preset_files import Preset
from .presets import PresetStore

__all__ = [
    "ConversationStore",
    "Database",
    "Preset",
    "PresetStore",
    "StoredConversation",
    "StoredMessage",
    "core_migrations",
]
