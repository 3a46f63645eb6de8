"""``mer-keras train``: the main job (protocol folds, pooled report, final model, export).

The options are :class:`mer_keras.jobs.train_options.TrainOptions`' fields; the job is
:func:`mer_keras.jobs.train.train`.
"""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.train_options import TrainOptions


def _train(opts: TrainOptions) -> None:
    from mer_keras.jobs.resolve import resume_options
    from mer_keras.jobs.train import train
    from mer_keras.train.strategy import split_cpu

    cpu_replicas = opts.cpu_replicas
    if opts.resume and not opts.config:  # both: the job refuses them with its own message
        cpu_replicas = resume_options(opts.resume).cpu_replicas  # the finished folds ran with this many replicas
    if cpu_replicas > 1:
        split_cpu(cpu_replicas)  # before TensorFlow makes its devices
    run = train(opts, console)
    console.print(str(run), highlight=False, soft_wrap=True)


train = command(TrainOptions, _train, doc="""Train and evaluate a model under leave-one-subject-out, """
                """then fit on all subjects and export.

    With no dataset argument it runs on the embedded synthetic micro-expressions (real face
    photos, synthetic facial actions). The run folder is printed as the last line.
    """)
