"""Fitting and LOSO evaluation.

Honest protocol: every fold trains for a fixed number of epochs on the training subjects only;
nothing (epoch, threshold, checkpoint) is chosen by looking at the test subject. Class weights,
when on, come from the training labels of the fold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from mer_keras._keras import keras, tf
from mer_keras.data.protocols import LOSO, Fold
from mer_keras.registry import create_model
from mer_keras.train.metrics import compute_metrics


@dataclass
class TrainConfig:
    """Training hyper-parameters (one config for every fold and the final model).

    Attributes:
        model: registry name. epochs: fixed epoch count (no early stopping on test data).
        batch_size: global batch size (split over replicas). lr: Adam learning rate.
        seed: random seed (weights, shuffling, augmentation). augment: random horizontal flips
        (the u channel of a flow input is negated with the flip). class_weight: balanced class
        weights from the training labels. model_options: keyword options of the builder.
        flow_input: True when the input is a (u, v, strain) flow image.
    """

    model: str = "learnet"
    epochs: int = 80
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    augment: bool = True
    class_weight: bool = True
    model_options: dict = field(default_factory=dict)
    flow_input: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def make_dataset(x: np.ndarray, y: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 augment: bool = False, flow_input: bool = False, seed: int = 0) -> tf.data.Dataset:
    """tf.data pipeline over in-memory inputs.

    Args:
        x: (N, H, W, C) float32 in [0, 255]; y: (N,) int labels or None.
    Returns:
        Batched dataset of (x, y) or x; flips negate channel 0 (u) when ``flow_input``.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y) if y is not None else x)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if augment:
        def flip(img, label=None):
            flipped = tf.image.flip_left_right(img)
            if flow_input:
                flipped = tf.concat([255.0 - flipped[..., :1], flipped[..., 1:]], axis=-1)
            coin = tf.random.uniform((), seed=seed) < 0.5
            img = tf.where(coin, flipped, img)
            return img if label is None else (img, label)

        ds = ds.map(flip, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def balanced_class_weight(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """sklearn's 'balanced' weights n / (K * n_k), K = classes present in ``y``.

    Args:
        y: (N,) int labels in [0, num_classes).
    Returns:
        {class index: weight} for every class 0..num_classes-1 (Keras requires all keys); a class
        absent from ``y`` gets 1.0, which has no effect since no sample carries it.
    """
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    w = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y)))
    return {k: float(w.get(k, 1.0)) for k in range(num_classes)}


def fit_model(x: np.ndarray, y: np.ndarray, num_classes: int, cfg: TrainConfig,
              strategy: tf.distribute.Strategy | None = None, callbacks: Sequence = ()) -> keras.Model:
    """Build, compile and fit one model on (x, y) for ``cfg.epochs`` epochs.

    Returns:
        The fitted ``keras.Model`` (softmax outputs).
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = create_model(cfg.model, num_classes, input_shape=x.shape[1:], **cfg.model_options)
        model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    ds = make_dataset(x, y, cfg.batch_size, shuffle=True, augment=cfg.augment, flow_input=cfg.flow_input,
                      seed=cfg.seed)
    cw = balanced_class_weight(y, num_classes) if cfg.class_weight else None
    model.fit(ds, epochs=cfg.epochs, verbose=0, class_weight=cw, callbacks=list(callbacks))
    return model


def predict_proba(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, K) float32 class probabilities of a Keras model."""
    return np.asarray(model.predict(make_dataset(x, None, batch_size), verbose=0), np.float32)


def run_loso(x: np.ndarray, y: np.ndarray, groups: Sequence[str], classes: Sequence[str], cfg: TrainConfig,
             strategy: tf.distribute.Strategy | None = None, only: Sequence[str] | None = None,
             fold_callbacks: Callable[[Fold], Sequence] | None = None,
             on_fold_end: Callable[[Fold, np.ndarray], None] | None = None) -> dict:
    """Leave-one-subject-out training and evaluation.

    Args:
        x: (N, H, W, C) inputs; y: (N,) int labels; groups: subject of each sample.
        only: run only these subjects' folds.
        fold_callbacks: fold -> extra Keras callbacks (e.g. progress).
        on_fold_end: called with the fold and its (n_test, K) probabilities.
    Returns:
        {"probabilities": (N, K) array (NaN for samples in no test fold), "folds": [per-fold dict]}.
    """
    folds = LOSO().folds(groups, only=only)
    probs = np.full((len(x), len(classes)), np.nan, np.float32)
    fold_rows = []
    for fold in folds:
        model = fit_model(x[fold.train], y[fold.train], len(classes), cfg, strategy,
                          callbacks=fold_callbacks(fold) if fold_callbacks else ())
        history = model.history.history
        p = predict_proba(model, x[fold.test])
        probs[fold.test] = p
        m = compute_metrics(y[fold.test], p.argmax(1), classes)
        fold_rows.append({"subject": fold.name, "n_train": int(len(fold.train)), "n_test": int(len(fold.test)),
                          "accuracy": m["accuracy"], "uf1": m["uf1"], "uar": m["uar"],
                          "final_train_loss": float(history["loss"][-1]),
                          "final_train_accuracy": float(history["accuracy"][-1])})
        if on_fold_end:
            on_fold_end(fold, p)
        del model
        keras.backend.clear_session()
    return {"probabilities": probs, "folds": fold_rows}
