"""Quantization-aware training (tfmot): which layers get fake-quant, the QAT model, its fine-tune.

The conversion that follows (TFLite converter, post-training quantization) is
:mod:`mer_keras.export.tflite`.

QAT follows the tensorflow-model-optimization 0.8.1 guide ("Quantization aware training
comprehensive guide"): annotate the layers, ``quantize_apply`` with the default 8-bit scheme
(per-channel weights, per-tensor activations, Conv+BatchNorm folding), fine-tune a few epochs,
then convert with the TFLite converter to full-integer int8.

tfmot's default registry knows Conv2D, Dense, Add, Concatenate, ReLU, Softmax, most pooling and
shape layers, and BatchNormalization right after a convolution (folded). Every other layer in the
zoo gets an explicit decision in :data:`LAYER_POLICY`, and :func:`qat_plan` refuses a layer type
that has none, so no model is quantized silently in part:

* ``output``: the layer is an elementwise or affine op whose int8 TFLite kernel exists (MUL, ADD,
  the batch-norm affine); its output gets a fake-quant (moving-average min/max, 8 bit) like an
  ``Add``.
* ``pass``: a slice that only selects values; its output keeps the input's scale (no fake-quant).
* ``float_in_qat``: no fake-quant during fine-tuning (tfmot 0.8.1 has no QuantizeConfig for it);
  the converter still quantizes its ops to int8 from the representative (training) inputs, i.e.
  post-training calibration for that layer only. The reason is recorded in the export report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow_model_optimization as tfmot  # noqa: E402  (after mer_keras._keras: tfmot needs tf_keras)

from mer_keras._keras import keras, tf

#: Decision and reason for layer types outside tfmot's default 8-bit registry.
LAYER_POLICY: dict[str, tuple[str, str]] = {
    "Rescaling": ("output", "x * scale + offset lowers to int8 MUL/ADD; output fake-quantized"),
    "Multiply": ("output", "elementwise product (attention masks) has an int8 MUL kernel; output fake-quantized"),
    "BatchNormalization": ("output", "not after a convolution, so not foldable; the affine lowers to int8 MUL/ADD"),
    "NormalizedWeightedSum": ("output", "weighted sum of feature maps lowers to int8 MUL/ADD"),
    "TokenPositionBias": ("output", "adds a learned bias: int8 ADD"),
    "ChannelSlice": ("pass", "a slice keeps its input's quantization"),
    "TimeStep": ("pass", "a slice keeps its input's quantization"),
    "LayerNormalization": ("float_in_qat", "tfmot 0.8.1 has no QuantizeConfig for LayerNormalization "
                                           "(mean, variance, rsqrt); calibrated after training instead"),
    "MultiHeadAttention": ("float_in_qat", "tfmot 0.8.1 cannot fake-quantize the einsums and softmax inside "
                                           "MultiHeadAttention; calibrated after training instead"),
    "TimeDistributed": ("float_in_qat", "tfmot 0.8.1 does not see through the TimeDistributed wrapper; "
                                        "calibrated after training instead"),
}


class NoQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """No fake-quant on the layer (a slice, or a layer left to post-training calibration)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class OutputQuantizeConfig(NoQuantizeConfig):
    """Fake-quantize a layer's output only (8 bit, moving-average min/max, per tensor)."""

    def get_output_quantizers(self, layer):
        return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]


@dataclass
class QATPlan:
    """How each layer of a model is treated by QAT.

    Attributes:
        default: layers tfmot quantizes with its own configs. output, passthrough: layers given
        :class:`OutputQuantizeConfig` / :class:`NoQuantizeConfig`. float_in_qat: {layer: reason}
        for layers left to post-training calibration.
    """

    default: list[str]
    output: list[str]
    passthrough: list[str]
    float_in_qat: dict[str, str]

    def summary(self) -> dict:
        return {"fake_quantized_by_tfmot": len(self.default), "output_fake_quant": self.output,
                "pass_through": self.passthrough, "calibrated_after_training": self.float_in_qat}


def _after_conv(layer) -> bool:
    """True when a BatchNormalization directly follows a convolution that feeds only it (foldable)."""
    inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else []
    if isinstance(inbound, list):
        if len(inbound) != 1:
            return False
        inbound = inbound[0]
    return (isinstance(inbound, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
            and len(inbound._outbound_nodes) == 1)


def qat_plan(model: keras.Model) -> QATPlan:
    """Decide, per layer, how QAT treats it (see the module docstring).

    Raises:
        ValueError: a layer type with no decision (named), so nothing is left unquantized silently.
    """
    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    plan = QATPlan([], [], [], {})
    unknown = []
    for layer in model.layers:
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if kind == "BatchNormalization" and _after_conv(layer):
            plan.default.append(layer.name)
        elif kind in LAYER_POLICY:
            decision, reason = LAYER_POLICY[kind]
            {"output": plan.output, "pass": plan.passthrough}.get(decision, []).append(layer.name)
            if decision == "float_in_qat":
                plan.float_in_qat[layer.name] = reason
        elif registry.supports(layer):
            plan.default.append(layer.name)
        else:
            unknown.append(f"{layer.name} ({kind})")
    if unknown:
        raise ValueError(f"{model.name}: no QAT decision for layer(s) {', '.join(unknown)}; "
                         "add the type to mer_keras.export.quantize.LAYER_POLICY")
    return plan


def _scope() -> dict:
    from mer_keras.layers import custom

    objects = {name: obj for name, obj in vars(custom).items() if isinstance(obj, type)
               and issubclass(obj, keras.layers.Layer)}
    return {**objects, "OutputQuantizeConfig": OutputQuantizeConfig, "NoQuantizeConfig": NoQuantizeConfig}


def quantize_aware(model: keras.Model) -> tuple[keras.Model, QATPlan]:
    """The QAT version of a single-output classifier (fake-quant nodes inserted, weights kept).

    Args:
        model: a float ``keras.Model`` (use :func:`mer_keras.factory.inference_model` first).
    Returns:
        (qat_model, plan): an uncompiled model with the same input and output shapes.
    Raises:
        ValueError: a layer with no QAT decision (see :func:`qat_plan`).
    """
    q = tfmot.quantization.keras
    plan = qat_plan(model)
    output, passthrough = set(plan.output), set(plan.passthrough) | set(plan.float_in_qat)

    def annotate(layer):
        if layer.name in output:
            return q.quantize_annotate_layer(layer, OutputQuantizeConfig())
        if layer.name in passthrough:
            return q.quantize_annotate_layer(layer, NoQuantizeConfig())
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        return q.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with q.quantize_scope(_scope()):
        qat = q.quantize_apply(annotated)
    return qat, plan


@contextlib.contextmanager
def _ranges_from_one_batch():
    """Make tfmot's moving-average range quantizers take the current batch's min/max (EMA decay 0)."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize

    def from_batch(*args, **kwargs):
        kwargs["ema_decay"] = 0.0
        return original(*args, **kwargs)

    quant_ops.MovingAvgQuantize = from_batch
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def calibrate_ranges(qat: keras.Model, x: np.ndarray, samples: int = 64, seed: int = 0) -> int:
    """Start every fake-quant range at the min/max of real activations, not at tfmot's [-6, 6].

    tfmot initialises activation ranges to [-6, 6] and moves them with an exponential moving
    average of decay 0.999 per training step, so on MER-sized data (a few hundred clips, under
    10 steps per epoch) they would stay near [-6, 6] through the whole fine-tuning, clipping large
    activations and wasting resolution on small ones (measured: OFF-ApexNet's UF1 on held-out clips
    fell from 0.988 to 0.920 with fake-quant alone). This runs one training-mode forward pass on
    ``samples`` training inputs with the decay set to 0, so each range becomes that batch's
    min/max (what post-training calibration does), then restores every other variable (batch-norm
    statistics, weights) to its value before the pass.

    Returns:
        The number of range variables set.
    """
    pick = np.random.default_rng(seed).permutation(len(x))[:samples]
    is_range = [v.name.split("/")[-1].split(":")[0].endswith(("_min", "_max")) for v in qat.variables]
    before = [v.numpy() for v in qat.variables]
    with _ranges_from_one_batch():
        qat(tf.constant(x[pick], tf.float32), training=True)
    for v, value, keep_new in zip(qat.variables, before, is_range):
        if not keep_new:
            v.assign(value)
    return int(sum(is_range))


def qat_fine_tune(model: keras.Model, x: np.ndarray, y: np.ndarray,
                  batches: Callable[[np.ndarray, np.ndarray], tf.data.Dataset], epochs: int = 3,
                  lr: float = 1e-4, class_weight: bool = True, seed: int = 0) -> tuple[keras.Model, QATPlan, dict]:
    """Quantization-aware fine-tuning of a trained classifier.

    In order: the global seed is set (``keras.utils.set_random_seed(seed)``), the QAT model is
    made (:func:`quantize_aware`), its ranges calibrated (:func:`calibrate_ranges`), it is
    compiled (Adam ``lr``, sparse categorical cross-entropy), then ``batches(x, y)`` is called and
    fitted for ``epochs``. The dataset is made after the seed is set, so its seeded shuffle and
    flips are the same for the same seed.

    Args:
        model: trained float single-output classifier, input float32 in [0, 255].
        x: (N, ...) float32 training inputs; y: (N,) int labels in [0, K).
        batches: ``(x, y) -> tf.data.Dataset``, the fine-tuning batches as the run was trained
            (shuffle, flips, batch size), e.g. training's ``make_dataset`` bound with
            ``functools.partial(make_dataset, batch_size=32, shuffle=True, augment=True,
            flow_input=False, seed=seed)``; the export library builds no training pipeline.
        epochs, lr: fine-tuning budget; 3 epochs at 1e-4 by default (a tenth of the project's
            default training rate): the tfmot guide fine-tunes the trained float model briefly
            rather than training from scratch.
        class_weight: weight the loss with balanced class weights of ``y``
            (:func:`mer_keras.data.weights.balanced_class_weight`).
    Returns:
        (qat_model, plan, history) with history {"loss": [...], "accuracy": [...]} (floats per epoch).
    Raises:
        ValueError: a layer with no QAT decision (see :func:`qat_plan`).
        DataError: an input of ``x`` holds NaN or infinite values (named), before any fine-tuning.
        OptionError: the fine-tuning loss became NaN or infinite (named with its epoch).
    """
    from mer_keras.data.checks import check_finite_inputs
    from mer_keras.data.weights import balanced_class_weight

    check_finite_inputs(x, "QAT fine-tuning")  # a NaN input is the data's fault, not --qat-lr's
    keras.utils.set_random_seed(seed)
    qat, plan = quantize_aware(model)
    calibrate_ranges(qat, x, seed=seed)
    qat.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    num_classes = int(model.output_shape[-1])
    cw = balanced_class_weight(y, num_classes) if class_weight else None
    ds = batches(x, y)
    hist = qat.fit(ds, epochs=epochs, verbose=0, class_weight=cw, callbacks=[_StopOnNonFiniteQATLoss(epochs, lr)])
    return qat, plan, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


class _StopOnNonFiniteQATLoss(keras.callbacks.Callback):
    """End QAT fine-tuning with :class:`~mer_keras.errors.OptionError` at the first epoch whose
    loss is NaN or infinite (a diverged fine-tuning would convert to an int8 model of NaN)."""

    def __init__(self, epochs: int, lr: float):
        super().__init__()
        self.epochs, self.lr = int(epochs), float(lr)

    def on_epoch_end(self, epoch, logs=None):
        import math

        from mer_keras.errors import OptionError

        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise OptionError(f"QAT fine-tuning: the training loss is {float(loss)} at epoch {epoch + 1} of "
                              f"{self.epochs}; the learning rate {self.lr:g} is likely too large (try a smaller "
                              "--qat-lr); no QAT model was written")
