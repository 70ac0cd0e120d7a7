"""Shared fixtures: where the real data lives, and small model settings for fast CPU tests.

The data directory is ../shared/data beside the checkout (as CI lays it out), or whatever the
ELECTRAMED_DATA environment variable names. Tests never copy data into the working tree; outputs go
to pytest's tmp_path.
"""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def find_data_dir() -> Path:
    """The real data sets: $ELECTRAMED_DATA, else ../shared/data next to the repo, else data/."""
    candidates = [os.environ.get("ELECTRAMED_DATA"), REPO.parent / "shared" / "data", REPO / "data"]
    for c in candidates:
        if c and (Path(c) / "vocab" / "scivocab_uncased.txt").is_file():
            return Path(c)
    raise pytest.UsageError(
        "real data not found: set ELECTRAMED_DATA to the data directory "
        "(../shared/data in this workplace, or run `python data.py download all`)")


@pytest.fixture(scope="session", autouse=True)
def data_dir() -> Path:
    """The data directory, also exported as ELECTRAMED_DATA so that the CLIs under test default to it."""
    path = find_data_dir()
    os.environ.setdefault("ELECTRAMED_DATA", str(path))
    return path


@pytest.fixture(scope="session")
def scivocab(data_dir) -> Path:
    return data_dir / "vocab" / "scivocab_uncased.txt"


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same torch seed, on few threads (CI has 2 cores)."""
    torch.manual_seed(0)
    yield
