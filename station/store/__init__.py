"""The station database: records stored once, alarms with their evidence, gateway keys.

SQLite (embedded default) or PostgreSQL (several receivers), behind ``RecordStore``.
"""

from station.store.db import StoreUnavailable
from station.store.store import Outcome, RecordStore

__all__ = ["Outcome", "RecordStore", "StoreUnavailable"]
