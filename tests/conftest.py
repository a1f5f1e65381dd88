"""Shared test fixtures: the location of the offline data shipped beside the repository."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir():
    """Path to ../shared (real data and models); skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared (offline data and models) is not present")
    return SHARED
