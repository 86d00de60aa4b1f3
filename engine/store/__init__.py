"""SQLite storage: the database, migrations, conversations, messages, presets."""

from .conversations import ConversationStore, StoredConversation, StoredMessage
from .db import Database
from .migrations import core as core_migrations
from .preset_files import Preset
from .presets import PresetStore
from .tree import Branches, BranchPoint

__all__ = [
    "BranchPoint",
    "Branches",
    "ConversationStore",
    "Database",
    "Preset",
    "PresetStore",
    "StoredConversation",
    "StoredMessage",
    "core_migrations",
]
