"""Fixtures shared by the unit tests of services: the in-memory fakes of the stores."""

from __future__ import annotations

import pytest

from tests.fakes.stores import FakeProjectStore, FakeStateStores


@pytest.fixture
def store() -> FakeProjectStore:
    return FakeProjectStore()


@pytest.fixture
def states() -> FakeStateStores:
    return FakeStateStores()
