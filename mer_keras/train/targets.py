"""Training targets and losses of the auxiliary heads (multi-output models).

A model with auxiliary losses returns a dict of outputs: ``predictions`` (the (B, K) softmax
trained by cross-entropy) plus one entry per auxiliary head, each declared in the registry with a
target kind (:data:`mer_keras.registry.AUX_TARGETS`) and a default loss weight:

* ``proposal``: (B, K) sigmoid scores, one per class; target the one-hot class, binary
  cross-entropy (each branch separates its own expression from the rest; Zhou et al., PR 2022).
* ``au``: (B, A) sigmoid AU scores over :data:`mer_keras.facs.AU_VOCABULARY`; target the coding
  sheet's AUs as a multi-hot vector, binary cross-entropy. A clip with no AU coding (all of
  SMIC) takes its emotion's row of the emotion -> AU table instead, a soft target
  (:func:`with_au_prior`); a clip whose class has no row, or coded only with AUs outside the
  vocabulary, is masked out of the loss.
* ``au_cluster``: (B, D) embedding; target the same AUs (soft for the table rows, which then
  weigh each AU's centre); :func:`au_centre_loss`.

The trainer (:mod:`mer_keras.train.fit`) turns labels and samples into these targets, so every
model trains through the same ``fit``; nothing here looks at test subjects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mer_keras._keras import keras, tf
from mer_keras.errors import OptionError
from mer_keras.facs import AU_VOCABULARY


def au_targets(aus: Sequence[Sequence[str]],
               vocabulary: Sequence[str] = AU_VOCABULARY) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot AU targets of N clips.

    Args:
        aus: per clip, the AUs in canonical ``AU<n>`` form (:func:`mer_keras.data.sheets.parse_aus`).
        vocabulary: the A AUs of the head, in output order.
    Returns:
        ``(targets, known)``: (N, A) float32 in {0, 1}, and (N,) float32 1.0 where the clip has at
        least one AU of the vocabulary (the loss mask), else 0.0.
    """
    index = {au: k for k, au in enumerate(vocabulary)}
    targets = np.zeros((len(aus), len(vocabulary)), np.float32)
    for i, clip_aus in enumerate(aus):
        for au in clip_aus:
            if au in index:
                targets[i, index[au]] = 1.0
    return targets, (targets.sum(1) > 0).astype(np.float32)


def with_au_prior(y: np.ndarray, au: np.ndarray, known: np.ndarray, classes: Sequence[str],
                  vocabulary: Sequence[str], uncoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AU targets where clips without codes take their class's prior (:func:`mer_keras.facs.emotion_au_prior`).

    Args:
        y: (N,) int labels. au: (N, A) multi-hot codes. known: (N,) 1.0 where a clip is coded with
        an AU of the vocabulary. uncoded: (N,) bool, True where a clip has no AU code at all. A
        clip coded only with AUs outside the vocabulary (AU45, SAMM's head movements) is neither:
        it stays masked, since the table would contradict it.
    Returns:
        ``(targets, mask)``: (N, A) float32 (codes, or the soft prior row of the clip's class) and
        (N,) float32 1.0 where a clip now has a target.
    """
    from mer_keras.facs import emotion_au_prior

    prior, has = emotion_au_prior(y, au, known, classes, vocabulary)
    fill = uncoded & has[y]  # an uncoded clip has known == 0
    au = au.copy()
    au[fill] = prior[y[fill]]
    return au, np.where(fill, 1.0, known).astype(np.float32)


@keras.saving.register_keras_serializable(package="mer_keras")
def au_centre_loss(y_true, y_pred):
    """Clustering constraint: pull the embeddings of clips that share an AU to their centre.

    A batch form of the centre loss (Wen et al., ECCV 2016) with one centre per AU, computed from
    the batch itself (no stored centres, so it is stateless): for every AU a the
    centre c_a is the mean embedding of the clips of the batch that carry a, and a clip's loss is
    the mean over its AUs of ||f_i - c_a||^2 / D. Clips without AUs get 0. Under a distribution
    strategy the centres come from each replica's share of the batch. Keras averages the loss over
    the whole batch, masked clips included, so batches with many uncoded clips weigh it less.
    Give it a normalised embedding (``au_convlstm`` does), or it can be met by shrinking it.

    Args:
        y_true: (B, A) float32 AU weights in [0, 1]: multi-hot codes, or a soft row of the
            emotion -> AU table (:func:`with_au_prior`). y_pred: (B, D) float32 embeddings.
    Returns:
        (B,) float32 per-clip loss, >= 0.
    """
    m = tf.cast(y_true, y_pred.dtype)                                   # (B, A)
    count = tf.reduce_sum(m, axis=0)                                    # (A,)
    centres = tf.matmul(m, y_pred, transpose_a=True) / tf.maximum(count, 1.0)[:, None]  # (A, D)
    centres = tf.stop_gradient(centres)
    d2 = tf.reduce_mean(tf.square(y_pred[:, None, :] - centres[None, :, :]), axis=-1)   # (B, A)
    return tf.reduce_sum(m * d2, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="mer_keras")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against probabilities, with label smoothing: the target of
    label ``c`` is ``(1 - s) * one_hot(c) + s / K`` (Szegedy et al., CVPR 2016, Sec. 7), what
    Keras' ``CategoricalCrossentropy(label_smoothing=s)`` computes on one-hot labels.

    Args:
        smoothing: s in [0, 1). num_classes: K.
    Call: y_true (B,) or (B, 1) int labels, y_pred (B, K) float32 probabilities -> (B,) losses.
    """

    def __init__(self, smoothing: float = 0.0, num_classes: int = 3, name: str = "smoothed_sparse_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing, self.num_classes = float(smoothing), int(num_classes)

    def call(self, y_true, y_pred):
        return smoothed_crossentropy(y_true, y_pred, self.smoothing)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing, "num_classes": self.num_classes}


def smoothed_crossentropy(y_true, y_pred, smoothing: float):
    """Per-sample cross-entropy of int labels ``y_true`` (any shape S, or S + (1,)) against
    probabilities ``y_pred`` (S + (K,)), the targets smoothed by ``smoothing`` (0: Keras' sparse
    categorical cross-entropy itself)."""
    if not smoothing:
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
    labels = tf.cast(y_true, tf.int32)
    if labels.shape.rank == y_pred.shape.rank:
        labels = tf.squeeze(labels, -1)
    onehot = tf.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype)
    return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=smoothing)


def aux_losses_for(spec_aux: dict[str, tuple[str, float]],
                   weights: dict[str, float] | None = None) -> tuple[dict, dict]:
    """Keras ``loss`` and ``loss_weights`` dicts for a multi-output model.

    Args:
        spec_aux: the registry's {output: (kind, default weight)}.
        weights: overrides of the auxiliary weights by output name (e.g. ``{"proposal": 0.5}``).
    Raises:
        OptionError: a weight names an output the model does not have.
    """
    weights = dict(weights or {})
    unknown = set(weights) - set(spec_aux)
    if unknown:
        raise OptionError(f"loss weights for unknown outputs {sorted(unknown)}; this model has {sorted(spec_aux)}")
    loss = {"predictions": "sparse_categorical_crossentropy"}
    loss_weights = {"predictions": 1.0}
    for out, (kind, default) in spec_aux.items():
        loss[out] = au_centre_loss if kind == "au_cluster" else "binary_crossentropy"
        loss_weights[out] = float(weights.get(out, default))
    return loss, loss_weights


def build_targets(y: np.ndarray, aus: Sequence[Sequence[str]] | None, num_classes: int,
                  spec_aux: dict[str, tuple[str, float]], class_weight: dict[int, float] | None,
                  vocabulary: Sequence[str] = AU_VOCABULARY,
                  classes: Sequence[str] | None = None) -> tuple[dict, dict]:
    """Targets and per-sample weights of every output, for ``fit``.

    Args:
        y: (N,) int class labels. aus: per clip its AUs (``None``: no clip has AU codes).
        class_weight: {class: weight} or None. classes: the K class names; with them, a clip
        without AU codes gets its class's row of the emotion -> AU table
        (:func:`mer_keras.facs.emotion_au_prior`, fitted on these training clips) as a soft AU
        target, so the AU heads also learn on databases without AU coding (SMIC). Without them,
        or for a class the table does not know, such clips are masked out of the AU losses.
    Returns:
        ``(targets, sample_weights)``: dicts keyed by output name of (N, ...) float32 arrays. The
        class weight applies to ``predictions`` and ``proposal``; the AU mask to ``au`` and
        ``au_cluster``.
    """
    n = len(y)
    cw = np.array([class_weight[int(k)] for k in y], np.float32) if class_weight else np.ones(n, np.float32)
    targets = {"predictions": np.asarray(y, np.int64)}
    weights = {"predictions": cw}
    au, known = au_targets(aus, vocabulary) if aus is not None else (np.zeros((n, len(vocabulary)), np.float32),
                                                                      np.zeros(n, np.float32))
    if classes is not None and any(kind in ("au", "au_cluster") for kind, _ in spec_aux.values()):
        uncoded = np.array([len(a) == 0 for a in aus], bool) if aus is not None else np.ones(n, bool)
        au, known = with_au_prior(np.asarray(y), au, known, classes, vocabulary, uncoded)
    for out, (kind, _) in spec_aux.items():
        if kind == "proposal":
            targets[out] = np.eye(num_classes, dtype=np.float32)[y]
            weights[out] = cw
        else:
            targets[out] = au
            weights[out] = known
    return targets, weights
