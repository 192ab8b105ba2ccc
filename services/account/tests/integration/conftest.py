"""Fixtures shared by the account service's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from servicekit.mongo import Store
from servicekit.testing import scratch_store


@pytest.fixture
async def payments(mongodb_url: str) -> AsyncIterator[Store]:
    """The payment service's store, for the audit's cross-checks (a database of its own)."""
    async with scratch_store(mongodb_url, "test_payments") as store:
        yield store
