"""The history store: samples kept across restarts in an embedded SQLite file, in tiers."""

from __future__ import annotations

from ._alert_log import AlertLog
from ._store import HistoryStore, QueryAborted, StoreState, store_from_settings

__all__ = ["AlertLog", "HistoryStore", "QueryAborted", "StoreState", "store_from_settings"]
