"""Fitted columns: the batch path writes the blocks the one-value reference gives."""

from __future__ import annotations

import numpy as np

from crmrisk.model.features.columns import CategoricalColumn, NumericColumn

VALUES = [None, 2.0, "3", 10.0, -1.0, float("nan"), True, "n/a", 10**400]


def test_numeric_fill_many__equals_encode_per_value():
    for column in (
        NumericColumn("x", "none", 0.5, 2.0, (0.0, 1.0, 3.0)),
        NumericColumn("x", "signed_log1p", 0.0, 1.0),
    ):
        out = np.zeros((len(VALUES), column.width + 2), dtype=np.float32)
        column.fill_many(VALUES, out, 1)
        expected = np.array([column.encode(v) for v in VALUES], dtype=np.float32)
        np.testing.assert_allclose(out[:, 1:-1], expected, rtol=1e-6)
        assert not out[:, [0, -1]].any()


def test_categorical_fill_many__one_hot_with_unknown_and_missing_blank():
    column = CategoricalColumn("c", ("web", "2"))
    out = np.zeros((5, column.width), dtype=np.float32)
    column.fill_many([" web ", 2.0, "fax", None, ""], out, 0)
    assert out.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
