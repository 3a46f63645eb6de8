"""The numpy Philox of mer_keras.train.philox gives TensorFlow's stateless random numbers bit for bit."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mer_keras.train.philox import stateless_uniform_int_pairs, stateless_uniform_scalars


def test_the_same_numbers_as_tensorflow():
    rng = np.random.default_rng(0)
    seeds = np.concatenate([np.stack([rng.integers(0, 2**31, 200), rng.integers(0, 2**40, 200)], 1),
                            [[0, 1], [7, 0], [2**62, 3], [123, 2**63 - 1]]])
    expected = np.array([tf.random.stateless_uniform((), seed=tf.constant(s, tf.int64)).numpy() for s in seeds])
    np.testing.assert_array_equal(stateless_uniform_scalars(seeds), expected)
    for k in (1, 2, 5):
        expected = np.array([tf.random.stateless_uniform((2,), seed=tf.constant(s, tf.int64), minval=-k, maxval=k + 1,
                                                         dtype=tf.int32).numpy() for s in seeds[:60]])
        np.testing.assert_array_equal(stateless_uniform_int_pairs(seeds[:60], -k, k + 1), expected)


def test_the_same_epoch_plan_as_the_training_batches():
    """Coins, shifts and mixup weights of an epoch, as training_dataset draws them (tfdata._epoch_plan)."""
    from mer_keras.train.tfdata import _epoch_plan, epoch_plans

    for n, seed, epoch in ((37, 4, 0), (430, 0, 79), (5, 2**20, 3)):
        order, coins, offsets, lam = _epoch_plan(n, tf.constant(seed, tf.int64), tf.constant(epoch, tf.int64), True,
                                                 3, mixup=True)
        plan = epoch_plans(n, seed, [epoch], augment=True, shift=3, mixup=True)
        np.testing.assert_array_equal(plan["order"][0], order.numpy())
        np.testing.assert_array_equal(plan["flip"][0], coins.numpy())
        np.testing.assert_array_equal(plan["offsets"][0], offsets.numpy())
        np.testing.assert_array_equal(plan["lam"][0], lam.numpy())
        assert ((lam.numpy() >= 0) & (lam.numpy() < 1)).all()
