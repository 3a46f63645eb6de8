"""Distil finished LOSO runs (teachers) into one small student, scored by the same LOSO.

Each teacher run (a `mer-keras train` or `tune` run folder) is retrained fold by fold from its
config.json (its seed, options and, for a tune run, each test subject's chosen recipe), every
fold's model predicting every clip (:func:`mer_keras.train.distill.teacher_probabilities`). The
student of fold s then trains on fold s's training clips with targets ``alpha * one_hot + (1 -
alpha) * mean of the teachers' fold-s probabilities`` (:func:`mer_keras.train.distill.student_targets`)
and is scored on subject s. The final student learns from the teachers' final models' targets
and is saved as ``student-seed<S>.keras`` beside the report (a registry model, loadable with
``mer_keras.load_model``; no run folder is written, so ``mer-keras export`` does not take it yet).

    python tools/distill_loso.py --teacher RUN_A --teacher RUN_B ... --student ststnet --seeds 0,1,2 \
        --alpha 0.5 --out /tmp/distill

Writes OUT/report.json: per student seed its pooled accuracy / UF1 / UAR and per database, the
teachers' ensemble figures from the same retrained folds, times, and what was run; and
OUT/student-seed<S>.keras.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def teacher_configs(run: Path, console):
    """(inputs, data, folds, cfg_of, final indices, final cfg) of one teacher run folder."""
    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.jobs.resolve import resolve_options, train_config
    from mer_keras.jobs.run_inputs import load_run_inputs

    opts, rep, data, inputs, final_mask = load_run_inputs(run, console)
    opts, rep = resolve_options(opts)
    base = train_config(opts, rep)
    groups = PROTOCOLS[opts.protocol].groups(data.rows, data.test_databases)
    folds = PROTOCOLS[opts.protocol].folds(groups)
    selection = run / "selection.json"
    if selection.is_file():  # a tune run: each test subject's recipe, the final model's own
        chosen = json.loads(selection.read_text())
        per_subject = chosen["per_subject"]
        final = chosen["choice"]["final"]

        def cfg_of(name):
            return replace(base, **per_subject[name])

        final_cfg = replace(base, **final["recipe"], epochs=final["epochs"])
    else:
        def cfg_of(name):
            return base

        final_cfg = base
    return opts, rep, data, inputs, folds, cfg_of, np.flatnonzero(final_mask), final_cfg


def figures(protocol: str, y, p, databases, classes) -> dict:
    """The protocol's own pooled report (overall and per database) of probabilities ``p``."""
    from mer_keras.data.protocols import PROTOCOLS

    report = PROTOCOLS[protocol].report(y, p, classes, databases)
    return {"overall": report["overall"], **report.get("per_database", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", action="append", required=True, help="a finished train or tune run folder")
    parser.add_argument("--student", default="ststnet", help="registry model of the student")
    parser.add_argument("--seeds", default="0", help="the students' seeds, comma-separated (teachers trained once)")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the labels in the targets")
    parser.add_argument("--out", required=True, help="folder for report.json and student.keras")
    args = parser.parse_args()

    from rich.console import Console

    from mer_keras.jobs.resolve import resolve_options, train_config
    from mer_keras.jobs.train_options import TrainOptions
    from mer_keras.models.inference import predict_proba
    from mer_keras.models.io import save_keras
    from mer_keras.train.distill import student_targets, teacher_probabilities
    from mer_keras.train.fit import FoldTrainer
    from mer_keras.train.folds import FINAL, run_folds

    console = Console(stderr=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    teachers, first = [], None
    for run in args.teacher:
        opts, rep, data, inputs, folds, cfg_of, final, final_cfg = teacher_configs(Path(run), console)
        if first is None:
            first = (opts, rep, data, inputs, folds, final)
        elif data.keys != first[2].keys:
            raise SystemExit(f"{run}: not the clips of {args.teacher[0]}")
        t0 = time.monotonic()
        probs = teacher_probabilities(inputs.x, inputs.y, folds, data.classes, cfg_of, final=final,
                                      final_cfg=final_cfg)
        teachers.append(probs)
        console.print(f"teacher {run}: {time.monotonic() - t0:.0f} s")
    opts, rep, data, inputs, folds, final = first
    y, classes = inputs.y, data.classes
    databases = [r["database"] for r in data.rows]
    ensemble = np.full((len(y), len(classes)), np.nan, np.float32)
    for fold in folds:
        ensemble[fold.test] = np.mean([t[fold.name][fold.test] for t in teachers], axis=0)
    targets = student_targets(y, teachers, args.alpha, len(classes))
    students = {}
    for seed in [int(v) for v in args.seeds.split(",")]:
        s_opts, s_rep = resolve_options(TrainOptions(model=args.student, data=opts.data, root=opts.root, seed=seed,
                                                     export=False))
        if s_rep != rep:
            raise SystemExit(f"the student's input ({s_rep}) differs from the teachers' ({rep})")
        cfg = train_config(s_opts, s_rep)
        t0 = time.monotonic()
        student = run_folds(inputs.x, y, folds, classes, cfg, soft_targets=targets)
        loso_s = time.monotonic() - t0
        trainer = FoldTrainer(inputs.x.shape[1:], len(classes), cfg, classes=classes)
        (fit,) = trainer.fit_program(inputs.x, y, [final], labels=["the final student"],
                                     soft_targets=[targets[FINAL][final]])
        if fit.diverged:
            raise SystemExit(fit.diverged)
        save_keras(fit.model(), out / f"student-seed{seed}.keras")
        students[seed] = {"loso": figures(opts.protocol, y, student["probabilities"], databases, classes),
                          "parameters": int(fit.model().count_params()),
                          "final_train_accuracy_vs_labels": float(
                              (predict_proba(fit.model(), inputs.x[final]).argmax(1) == y[final]).mean()),
                          "loso_seconds": round(loso_s, 1)}
        console.print(f"student seed {seed}: UF1 {students[seed]['loso']['overall']['uf1']:.3f} ({loso_s:.0f} s)")
    report = {"teachers": args.teacher, "student": args.student, "alpha": args.alpha, "students": students,
              "teachers_ensemble_loso": figures(opts.protocol, y, ensemble, databases, classes),
              "seconds_total": round(time.monotonic() - start, 1)}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
