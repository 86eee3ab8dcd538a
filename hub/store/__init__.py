"""The hub's durable state: message journal, business-key dedupe and durable timers.

Owns: the public surface of the state store (open_store, Store and the data types).
Callers import from here, never from the submodules, so the layout can change freely.
Must not: import anything from the hub runtime, adapters or the broker.
"""

from hub.store.engine import Store, create_store_engine, open_store, translate_errors
from hub.store.hot_path import HotPath
from hub.store.journal import FINAL_STATUSES, Hop, JournalEntry, JournalRecord, JournalStatus
from hub.store.schema import SCHEMA_VERSION, JSONDoc, UTCDateTime
from hub.store.timers import Timer
from hub.store.timers import schedule_many as schedule_timers

__all__ = [
    "FINAL_STATUSES",
    "JSONDoc",
    "SCHEMA_VERSION",
    "Hop",
    "HotPath",
    "JournalEntry",
    "JournalRecord",
    "JournalStatus",
    "Store",
    "Timer",
    "UTCDateTime",
    "create_store_engine",
    "open_store",
    "schedule_timers",
    "translate_errors",
]
