"""tf.distribute strategy selection, and what a run needs to know about its workers.

``auto``: MirroredStrategy over the visible GPUs when there is at least one, else the default
(single-device) strategy. ``mirrored``: MirroredStrategy over all visible GPUs, or over the
logical CPU devices when there is no GPU (how the multi-replica path is tested on CPU: split the
CPU with ``tf.config.set_logical_device_configuration`` before TensorFlow initialises).
``default``: no distribution. ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``
over the workers listed in the ``TF_CONFIG`` environment variable (each worker runs the same
command; docs/RELIABILITY.md shows launches on one host, Slurm and Kubernetes).

The batch size given to training is the *global* batch; each of R replicas (over all workers)
sees batch / R. The learning rate is not rescaled: with R replicas and the same global batch, a
step is the same step as on one device.
"""

from __future__ import annotations

import json
import os

from mer_keras._keras import tf
from mer_keras.errors import OptionError
from mer_keras.names import STRATEGIES  # noqa: F401  (re-exported)


def parse_tf_config(text: str | None) -> dict:
    """Check ``TF_CONFIG`` for the multi-worker strategy.

    Args:
        text: the variable's value, e.g.
            ``{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}``.
    Returns:
        The parsed dict.
    Raises:
        OptionError: unset, not JSON, no ``cluster.worker`` list, or a task that is not in the cluster.
    """
    if not text:
        raise OptionError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task of "
                          "this worker); see docs/RELIABILITY.md")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], int(task["index"])
        members = cluster[kind]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise OptionError(f"TF_CONFIG is not a cluster and task description ({type(exc).__name__}: {exc}); "
                          "see docs/RELIABILITY.md") from None
    if not isinstance(cluster.get("worker", []), list) or not 0 <= index < len(members):
        raise OptionError(f"TF_CONFIG: task {kind} {index} is not in its cluster {cluster}")
    return config


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Return the strategy called ``name`` (see module docstring).

    ``multiworker`` must be created before TensorFlow runs any op in the process (collective ops
    are configured at start-up), which ``mer-keras train`` does first thing.

    Raises:
        OptionError: unknown name, or ``multiworker`` without a valid ``TF_CONFIG``.
    """
    if name not in STRATEGIES:
        raise OptionError(f"unknown strategy {name!r}; expected one of {STRATEGIES}")
    if name == "multiworker":
        parse_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and not gpus):
        return tf.distribute.get_strategy()
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus])


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    """True for a MultiWorkerMirroredStrategy spanning more than one worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None
            and len(resolver.cluster_spec().as_dict().get("worker", [])) + len(
                resolver.cluster_spec().as_dict().get("chief", [])) > 1)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes the run's outputs: the ``chief`` task, else worker 0.

    Always True without multi-worker training.
    """
    if not is_multiworker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = bool(resolver.cluster_spec().as_dict().get("chief"))
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def broadcast_from_chief(strategy: tf.distribute.Strategy, value: float) -> float:
    """The chief's ``value`` on every worker; ``value`` itself without multi-worker training.

    A collective (``strategy.gather``): every worker must call it at the same point of the run.
    """
    if not is_multiworker(strategy):
        return float(value)
    row = tf.constant([[1.0, float(value)] if is_chief(strategy) else [0.0, 0.0]], tf.float64)
    rows = strategy.gather(strategy.run(lambda: tf.identity(row)), axis=0).numpy()
    return float(rows[rows[:, 0] == 1.0][0, 1])


def workers_agree(strategy: tf.distribute.Strategy, value: float) -> bool:
    """True when every worker passed the same ``value`` (always True without multi-worker training).

    A collective (``strategy.gather``): every worker must call it at the same point, and every
    worker gets the same answer, so all of them can stop together on a disagreement.
    """
    if not is_multiworker(strategy):
        return True
    row = tf.constant([float(value)], tf.float64)
    values = strategy.gather(strategy.run(lambda: tf.identity(row)), axis=0).numpy()
    return bool((values == values[0]).all())


def split_cpu(n: int) -> None:
    """Split the physical CPU into ``n`` logical devices (call before TensorFlow initialises).

    Raises:
        RuntimeError: TensorFlow's devices are already initialised.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
