"""In-memory state of the sandbox. Single event loop, no awaits inside mutations: no locks needed."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from .models import NotificationRecord, Transaction


class Store:
    def __init__(self) -> None:
        self.transactions: dict[str, Transaction] = {}  # by txn_ref (one merchant terminal)
        self.sessions: dict[str, Transaction] = {}  # by hosted-page session id
        self.notifications: list[NotificationRecord] = []
        self._query_request_ids: dict[str, datetime] = {}
        # Seeded from the wall clock so numbers do not repeat across restarts.
        self._next_no = int(time.time() * 10) % 10**10

    def add(self, txn: Transaction) -> None:
        self.transactions[txn.txn_ref] = txn
        self.sessions[txn.session_id] = txn

    def next_transaction_no(self) -> str:
        self._next_no += 1
        return str(self._next_no)

    def remember_query_request(self, request_id: str, now: datetime, ttl: timedelta) -> bool:
        """False when this vnp_RequestId was already used within `ttl`."""
        self._query_request_ids = {rid: at for rid, at in self._query_request_ids.items() if now - at < ttl}
        if request_id in self._query_request_ids:
            return False
        self._query_request_ids[request_id] = now
        return True

    def notifications_for(self, txn_ref: str | None) -> list[NotificationRecord]:
        return [n for n in self.notifications if txn_ref is None or n.txn_ref == txn_ref]

    def clear(self) -> None:
        self.transactions.clear()
        self.sessions.clear()
        self.notifications.clear()
        self._query_request_ids.clear()
