"""Memory, MemGPT-style: core blocks in every prompt, recall (every message), archival (vectors).

The context manager keeps any chat inside its token budget by folding the oldest
messages into a running summary; memory tools (schemas generated from typed functions)
let the model edit memory under a grammar. See engine/memory/context.py for the prompt
layout and ARCHITECTURE.md for where memory sits in a turn.
"""

from .archival import ArchivalEntry, ArchivalMemory
from .context import MemoryOptions, prefix_caps
from .core import Block, CoreMemory
from .migrations import memory_migrations
from .provenance import Origin, WriteRecord
from .recall import RecallMemory, RecallResult
from .schema import function_schema
from .service import MemoryService
from .summary import Summary
from .tools import TOOLS, ToolBox, ToolCall, ToolContext

__all__ = [
    "TOOLS",
    "ArchivalEntry",
    "ArchivalMemory",
    "Block",
    "CoreMemory",
    "MemoryOptions",
    "MemoryService",
    "Origin",
    "RecallMemory",
    "RecallResult",
    "Summary",
    "ToolBox",
    "ToolCall",
    "ToolContext",
    "WriteRecord",
    "function_schema",
    "memory_migrations",
    "prefix_caps",
]
