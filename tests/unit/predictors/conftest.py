"""Fixtures of the predictor tests: one BLAS/torch thread, the synthetic data."""

from __future__ import annotations

import pytest
import torch
from predictor_data import far_points, synthetic


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """One BLAS/torch thread: the test machine has 2 shared cores, oversubscription is slow."""
    import scipy.linalg  # noqa: F401  (load the BLAS libraries first: limits apply to loaded ones)
    import sklearn.gaussian_process  # noqa: F401
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def far():
    return far_points()
