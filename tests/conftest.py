"""Shared pytest set-up for the whole suite.

- Every test starts from the same random seed, so a failure reproduces with a plain rerun.
- Hypothesis runs without a per-example deadline (the machine's 2 cores are shared, so
  timings jitter) and with a modest number of examples; a test may ask for more with
  its own `@settings`. `HYPOTHESIS_PROFILE=thorough` runs many more examples.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "lstmlab",
    deadline=None,
    max_examples=20,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lstmlab"))


@pytest.fixture(autouse=True)
def _seeded_rng():
    """Seed torch's generator before each test: reproducible data and initialisation."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def single_thread():
    """Run a test on one intra-op thread, then restore the previous count.

    The tensors in the LSTM core tests are tiny, so threads only add synchronisation;
    on the 2 shared cores, with other processes busy, two OpenMP threads made the
    gradcheck tests ~8x slower (177 s vs 21 s measured under contention).
    Use with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def small_cache(tmp_path_factory):
    """A chorale cache of the four-part scores among the corpus's first 16 files (parsing
    all takes a minute)."""
    from lstmlab.data import chorales

    path = tmp_path_factory.mktemp("music-cache") / "chorales-small.npz"
    chorales.write_cache(chorales.parse_all(progress=False, files=chorales.chorale_files()[:16]), path)
    return path


@pytest.fixture
def use_small_cache(small_cache, monkeypatch):
    """Point the music recipe (and lstmlab odyssey's workers) at the small chorale cache."""
    monkeypatch.setenv("LSTMLAB_CHORALES", str(small_cache))
    return small_cache
