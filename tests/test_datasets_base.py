"""Helpers shared by the motion loaders: exact number parsing."""

import numpy as np
import pytest

from sklearn_privacy.datasets._base import parse_numeric_table


@pytest.mark.parametrize("delimiter", [",", None])
def test_parse_numeric_table_is_exact(delimiter):
    # Shortest round-trip decimal strings of random doubles over many magnitudes: the
    # parsed values must be the very doubles that were written, not 1 ulp off.
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2000, 3)) * np.exp(rng.normal(scale=5, size=(2000, 3)))
    sep = "," if delimiter == "," else " "
    text = "\n".join(sep.join(repr(float(v)) for v in row) for row in values) + "\n"
    parsed = parse_numeric_table(text, source="x.txt", n_columns=3, delimiter=delimiter)
    assert parsed.dtype == np.float64
    np.testing.assert_array_equal(parsed, values)


def test_parse_numeric_table_keeps_large_integers_exact():
    # Nanosecond timestamps beyond 2**53 must not go through float64.
    stamps = np.array([2**62 + 1, 2**62 + 3, 2**62 + 4], dtype=np.int64)
    text = "".join(f"{t},0.1,0.2,0.3\n" for t in stamps)
    values, ints = parse_numeric_table(text, source="x.txt", n_columns=4, delimiter=",", int_columns=(0,))
    np.testing.assert_array_equal(ints[:, 0], stamps)
    np.testing.assert_array_equal(values, np.tile([0.1, 0.2, 0.3], (3, 1)))
