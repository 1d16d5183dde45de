"""Suite-wide settings: one torch thread (the CI machine has 2 cores; tiny models run faster
single-threaded) and a private molvae cache folder, so tests never touch ~/.cache/molvae."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _molvae_test_environment(tmp_path_factory):
    previous = os.environ.get("MOLVAE_CACHE_DIR")
    os.environ["MOLVAE_CACHE_DIR"] = str(tmp_path_factory.mktemp("molvae-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if previous is None:
        os.environ.pop("MOLVAE_CACHE_DIR", None)
    else:
        os.environ["MOLVAE_CACHE_DIR"] = previous


# Property-based tests draw the same examples on every run, so CI results are reproducible;
# explore new examples locally with --hypothesis-seed=random.
try:
    from hypothesis import settings

    settings.register_profile("molvae", derandomize=True, database=None)
    settings.load_profile("molvae")
except ImportError:  # hypothesis is a dev extra
    pass
