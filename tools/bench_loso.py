"""Where the time of a LOSO training job goes, fold by fold, against the trainer's samples/s ceiling.

Runs the real job (:func:`mer_keras.jobs.train.train`, export off) inside
:func:`mer_keras.train.timing.recording` and prints one markdown row per model: wall-clock time of
the job, time per fold, and that time split into the trainer's phases (build, reset, dataset,
trace, training steps, predict, write, release; "other" is the job's own start-up: data loading,
run folder, report). The ceiling is ``tools/bench_train.py``'s rate for the same model and input
(random data, a traced graph, no per-fold work).

Data: ``composite`` is the MEGC2019 composite flow set in ``../shared/data/megc2019_composite_flow/``
(442 clips, 68 subjects; read in place by ``--data megc2019-flow``, nothing copied); ``synthetic``
is the embedded default set.

Usage:
    python tools/bench_loso.py --model ststnet [--model off_apexnet ...] [--data composite]
        [--folds N] [--epochs 80] [--parallel-folds K] [--final]
    python tools/bench_loso.py --ceilings --model ststnet ...   # the arithmetic ceilings only
    python tools/bench_loso.py --model ststnet --compare 6540009 --rounds 2   # old and new, interleaved
``--compare REF`` runs each job in a child process, alternately with the code of git commit REF
(a temporary git worktree put first on ``PYTHONPATH``) and with this checkout's, ``--rounds``
times, and prints one row per run with its UF1, so that a speed-up is measured on the same
machine in the same minutes and the results can be compared.
``--folds N`` runs the first N subjects only (per-fold figures, no final model unless ``--final``);
without it the job runs every fold and the final model, as ``mer-keras train`` does.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPOSITE = REPO.parent / "shared" / "data" / "megc2019_composite_flow"


def composite_subjects(folder: Path) -> list[str]:
    """The composite's LOSO subjects (``<dataset>_<sub>``) in file order, as the loader names them."""
    from mer_keras.data import megc2019_flow

    subjects = []
    for image in megc2019_flow.load(folder, strict=True).images:
        if image.subject not in subjects:
            subjects.append(image.subject)
    return subjects


def run_job(model: str, data: str, workdir: Path, n_folds: int | None, epochs: int, final: bool,
            parallel_folds: int | None) -> tuple[float, object, int]:
    """Run one training job quietly; returns (wall-clock seconds, PhaseTimes, folds run)."""
    from dataclasses import fields

    from rich.console import Console

    from mer_keras.jobs.train import train
    from mer_keras.jobs.train_options import TrainOptions
    from mer_keras.train.timing import recording

    kwargs = dict(model=model, epochs=epochs, export=False, out=str(workdir / "runs"))
    if "parallel_folds" in {f.name for f in fields(TrainOptions)} and parallel_folds is not None:
        kwargs["parallel_folds"] = parallel_folds
    if data == "composite":
        subjects = composite_subjects(COMPOSITE)
        kwargs.update(data="megc2019-flow", root=str(COMPOSITE))
    else:
        subjects = [f"sub{k + 1:02d}" for k in range(12)]
    if n_folds:
        kwargs.update(folds=subjects[:n_folds], final=final)
    console = Console(file=io.StringIO(), width=120)
    with recording() as times:
        start = time.perf_counter()
        train(TrainOptions(**kwargs), console=console)
        wall = time.perf_counter() - start
    return wall, times, n_folds or len(subjects)


def job_row(model: str, data: str, n_folds: int | None, epochs: int, final: bool,
            parallel_folds: int | None) -> dict:
    """Run one job in a temporary folder; its wall-clock time, phases and pooled UF1 as a dict."""
    import json

    with tempfile.TemporaryDirectory() as tmp:
        wall, times, n = run_job(model, data, Path(tmp), n_folds, epochs, final, parallel_folds)
        results = sorted(Path(tmp, "runs").glob("*/results.json"))
        uf1 = json.loads(results[0].read_text())["overall"]["uf1"] if results else None
    return {"wall": wall, "folds": n, "phases": dict(times.seconds), "other": wall - times.total(),
            "samples": times.samples, "uf1": uf1}


def compare(args) -> None:
    """Old (``--compare REF``) and new code in alternation, each job in its own process."""
    import json
    import os
    import subprocess
    import sys

    from mer_keras.environment import current_machine_kind

    print(f"machine: {current_machine_kind()}\n")
    print("| model | code | round | folds | job s | train steps s | UF1 |\n|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), args.compare],
                       check=True)
        try:
            for model in args.model:
                for r in range(args.rounds):
                    for code, path in ((args.compare, str(tree)), ("this checkout", str(REPO))):
                        cmd = [sys.executable, __file__, "--row", "--model", model, "--data", args.data,
                               "--epochs", str(args.epochs)]
                        if args.folds:
                            cmd += ["--folds", str(args.folds)] + (["--final"] if args.final else [])
                        if args.parallel_folds is not None and code == "this checkout":
                            cmd += ["--parallel-folds", str(args.parallel_folds)]
                        env = dict(os.environ, PYTHONPATH=path)
                        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
                        row = json.loads(out.strip().splitlines()[-1])
                        uf1 = f"{row['uf1']:.3f}" if row["uf1"] is not None else "-"
                        print(f"| {model} | {code} | {r + 1} | {row['folds']} | {row['wall']:.1f} | "
                              f"{row['phases']['train_steps']:.1f} | {uf1} |", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)


def sgemm_gflops(n: int = 1024, repeats: int = 20) -> float:
    """float32 matrix-product rate of numpy's BLAS on this machine (GFLOP/s): the FLOPs ceiling."""
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def print_ceilings(models: list[str]) -> None:
    """Per model: forward MFLOPs per sample, bench_train's samples/s, the GFLOP/s that rate is
    (training ~ 3 x forward FLOPs), against numpy's sgemm GFLOP/s."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_train import samples_per_second

    from mer_keras.factory import get_spec
    from mer_keras.train.multifold import forward_flops

    peak = sgemm_gflops()
    print(f"numpy float32 matrix product (1024 x 1024, all cores): {peak:.0f} GFLOP/s\n")
    print("| model | input | forward MFLOPs per sample | bench_train samples/s | training GFLOP/s (3 x forward) | "
          "share of the matrix-product rate |\n|---|---|---|---|---|---|")
    for model in models:
        shape = get_spec(model).input_shape
        flops = forward_flops(model, shape, 3)
        rate = samples_per_second(model, input_shape=shape)
        gflops = 3 * flops * rate / 1e9
        print(f"| {model} | {shape} | {flops / 1e6:.2f} | {rate:.0f} | {gflops:.1f} | {gflops / peak:.0%} |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="registered model (repeatable)")
    ap.add_argument("--data", choices=["composite", "synthetic"], default="composite")
    ap.add_argument("--folds", type=int, default=None, help="run only the first N subjects' folds")
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--final", action="store_true", help="with --folds: fit the final model too")
    ap.add_argument("--parallel-folds", type=int, default=None, help="folds trained at once (0: auto)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the bench_train.py ceiling")
    ap.add_argument("--ceilings", action="store_true", help="print only the FLOPs and samples/s ceilings")
    ap.add_argument("--compare", metavar="REF", help="git commit of the code to compare with, run interleaved")
    ap.add_argument("--rounds", type=int, default=1, help="with --compare: alternations per model")
    ap.add_argument("--row", action="store_true", help=argparse.SUPPRESS)  # a child of --compare
    args = ap.parse_args()
    if args.row:
        import json

        print(json.dumps(job_row(args.model[0], args.data, args.folds, args.epochs, args.final,
                                 args.parallel_folds)))
        return
    if args.compare:
        compare(args)
        return
    if args.ceilings:
        print_ceilings(args.model)
        return

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_train import samples_per_second

    from mer_keras.factory import get_spec
    from mer_keras.train.timing import PHASES

    print(f"| model | data | folds | job s | s per fold | {' | '.join(PHASES)} | other | train samples/s | "
          "ceiling samples/s |")
    print("|---" * (9 + len(PHASES)) + "|")
    for model in args.model:
        with tempfile.TemporaryDirectory() as tmp:
            wall, times, n = run_job(model, args.data, Path(tmp), args.folds, args.epochs, args.final,
                                     args.parallel_folds)
        shape = get_spec(model).input_shape
        ceiling = "-" if args.no_ceiling else f"{samples_per_second(model, input_shape=shape):.0f}"
        steps_rate = times.samples / max(times.seconds["train_steps"], 1e-9)
        phases = " | ".join(f"{times.seconds[p]:.1f}" for p in PHASES)
        print(f"| {model} | {args.data} | {n} | {wall:.1f} | {wall / n:.2f} | {phases} | {wall - times.total():.1f} | "
              f"{steps_rate:.0f} | {ceiling} |", flush=True)


if __name__ == "__main__":
    main()
