"""tf.distribute strategy selection.

``auto``: MirroredStrategy over the visible GPUs when there is at least one, else the default
(single-device) strategy. ``mirrored``: MirroredStrategy over all visible GPUs, or over the
logical CPU devices when there is no GPU (how the multi-replica path is tested on CPU: split the
CPU with ``tf.config.set_logical_device_configuration`` before TensorFlow initialises).
``default``: no distribution.

The batch size given to training is the *global* batch; each of R replicas sees batch / R.
"""

from __future__ import annotations

from mer_keras._keras import tf

STRATEGIES = ("auto", "default", "mirrored")


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Return the strategy called ``name`` (see module docstring).

    Raises:
        ValueError: unknown name.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {STRATEGIES}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and not gpus):
        return tf.distribute.get_strategy()
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus])


def split_cpu(n: int) -> None:
    """Split the physical CPU into ``n`` logical devices (call before TensorFlow initialises).

    Raises:
        RuntimeError: TensorFlow's devices are already initialised.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
