"""SQLite storage: the database, migrations, conversations, messages, presets."""

from .conversations import ConversationStore, StoredConversation, StoredMessage
from .db import Database
from .migrations import core as core_migrations
from .presets import BUILTIN_PRESETS, PresetStore
from .tree import Branches, BranchPoint

__all__ = [
    "BUILTIN_PRESETS",
    "BranchPoint",
    "Branches",
    "ConversationStore",
    "Database",
    "PresetStore",
    "StoredConversation",
    "StoredMessage",
    "core_migrations",
]
