"""The default dataset is read from scikit-learn's bundled file without importing scikit-learn."""

from __future__ import annotations

import importlib.util

import numpy as np

from lossbench.data import digits as digits_module


def test_digits_file_equals_load_digits(monkeypatch):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data, target = digits_module.digits_arrays()
    assert np.array_equal(data, bunch.data) and data.dtype == bunch.data.dtype
    assert np.array_equal(target, bunch.target)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no file found: load_digits
    data, target = digits_module.digits_arrays()
    assert np.array_equal(data, bunch.data) and np.array_equal(target, bunch.target)
