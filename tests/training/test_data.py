"""Splits as arrays: shape checks and subsampling."""

import pytest

from crmrisk.training.data import Arrays, DomainData, subsample


def test_arrays__rejects_misaligned_inputs(make_arrays):
    a = make_arrays(10, 0)
    with pytest.raises(ValueError, match="mask"):
        Arrays(a.events, a.mask[:, :2], a.profile, a.label)
    with pytest.raises(ValueError, match="profile"):
        Arrays(a.events, a.mask, a.profile[:5], a.label)


def test_subsample__caps_every_split(make_arrays):
    data = DomainData(make_arrays(50, 0), make_arrays(30, 1), make_arrays(8, 2))
    small = subsample(data, 10, seed=0)
    assert (len(small.train), len(small.val), len(small.test)) == (10, 10, 8)
    assert subsample(data, None, 0) is data
