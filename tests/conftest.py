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


@pytest.fixture(scope="session")
def shipped_model():
    """``(graph, train, test)``: the shipped Fashion-MNIST VGG with its 500 calibration and 1000
    test images; skips the test when the model is absent."""
    import eventsnn
    from eventsnn.datasets import default_model_path, load_shipped

    try:
        path, _ = default_model_path()
    except FileNotFoundError:
        pytest.skip("shipped model not present")
    return eventsnn.load_graph(path), load_shipped("train"), load_shipped("test")
