"""The windows scored events left, as rows: concatenated batches keep every row, padded."""

import numpy as np

from crmrisk.state import Windows
from tests.state.conftest import apply, new_table


def test_windows_concat__pads_to_the_longest_and_keeps_every_row():
    table = new_table()
    one = apply(table, {"id": "a", "t": 1, "customer": "x"}).windows
    two = apply(table, {"id": "b", "t": 2, "customer": "x"},
                 {"id": "c", "t": 1, "customer": "y"}, serial=2).windows  # fmt: skip
    both = Windows.concat([one, two])
    assert both.events.shape[:2] == (3, 2) and both.lengths.tolist() == [1, 2, 1]
    assert [both.event_ids(i) for i in range(3)] == [["a"], ["a", "b"], ["c"]]
    np.testing.assert_array_equal(both.events[0, :1], one.events[0])
    assert not both.mask[0, 1] and not both.events[0, 1].any()
