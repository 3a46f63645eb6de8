"""Per-database input normalisation (mer_keras.preprocess.normalise): each database moved to the
pooled statistics, labels never read, flips commute with it."""

from __future__ import annotations

import numpy as np
import pytest

from mer_keras.errors import DataError
from mer_keras.preprocess.normalise import FLOW_CENTRE, database_statistics, normalise_by_database


def two_databases(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(100, 10, (20, 6, 6, 3))
    b = rng.normal(160, 40, (30, 6, 6, 3))
    return np.concatenate([a, b]).astype(np.float32), ["casme2"] * 20 + ["samm"] * 30


def test_each_database_gets_the_pooled_statistics():
    x, dbs = two_databases()
    out = normalise_by_database(x, dbs, flow_input=False)
    (centre, spread) = database_statistics(x, dbs, False)["all"]
    for db in ("casme2", "samm"):
        rows = np.array(dbs) == db
        flat = out[rows].reshape(-1, 3).astype(np.float64)
        np.testing.assert_allclose(flat.mean(0), centre, rtol=1e-4)
        np.testing.assert_allclose(flat.std(0), spread, rtol=1e-4)


def test_flow_u_is_scaled_about_zero_motion_so_a_flip_commutes():
    """u -> 255 - u (a training flip) before or after the normalisation gives the same image."""
    x, dbs = two_databases(1)
    out = normalise_by_database(x, dbs, flow_input=True)
    flipped = x.copy()
    flipped[..., 0] = 255.0 - flipped[..., 0]
    both = np.concatenate([x, flipped])  # the flipped images belong to the same databases
    normalised_both = normalise_by_database(both, dbs + dbs, flow_input=True)
    np.testing.assert_allclose(normalised_both[len(x):, ..., 0], 2 * FLOW_CENTRE - normalised_both[:len(x), ..., 0],
                               atol=1e-3)
    assert database_statistics(x, dbs, True)["samm"][0][0] == FLOW_CENTRE
    assert not np.allclose(out, x)


def test_one_database_is_left_as_it_is_and_bad_input_is_named():
    x, _ = two_databases()
    np.testing.assert_allclose(normalise_by_database(x, ["smic"] * len(x), flow_input=True), x, atol=1e-3)
    with pytest.raises(DataError, match="50 inputs but 3 database names"):
        normalise_by_database(x, ["a", "b", "c"], flow_input=False)
    flat = np.concatenate([x[:20], np.full((5, 6, 6, 3), 7.0, np.float32)])
    with pytest.raises(DataError, match="database 'z' has a constant channel"):
        normalise_by_database(flat, ["a"] * 20 + ["z"] * 5, flow_input=False)
