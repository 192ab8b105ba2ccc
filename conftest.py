import pytest

pytest_plugins = ["servicekit.testing"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` run after every other (the money invariants hold after everything,
    the platform fault tests of tests/platform included)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
