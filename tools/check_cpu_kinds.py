"""Which results depend on the CPU, stage by stage: this machine against other kernel choices and
other (emulated) CPUs.

Each stage runs in a fresh process and writes what it computed; ``compare`` prints, per stage,
how far two runs are apart (0.0: every bit equal).

* ``data``: the synthetic set (3 subjects x 3 clips, seed 11) rendered, its frames hashed, the
  face-mesh landmarks of the onset frames, and the STSTNet (flow) and LEARNet (dynamic image)
  inputs built from it.
* ``spot``: a rendered long video (6 s at 30 fps) spotted with the analytic and the learned rules:
  frames, intervals and signals hashed.
* ``train``: STSTNet (3 epochs) and LEARNet (2 epochs) trained on the ``data`` stage's inputs of
  one run (so that only the training arithmetic can differ): probabilities and weights.

Variants (``--variants``): ``native``; ``avx2-kernels`` (numpy's and OpenCV's AVX-512 kernels off,
OpenBLAS on Haswell kernels, oneDNN capped to AVX2); ``onednn-off-1-thread``; and ``qemu:<CPU>``,
this machine's Python under ``qemu-x86_64 -cpu <CPU>`` (Debian's qemu-user; TCG emulates up to
AVX2, so ``qemu:EPYC-Milan`` is an AMD CPU without AVX-512 and ``qemu:Haswell`` an Intel one).
Emulated runs are 5 to 20 times slower.

    python tools/check_cpu_kinds.py --variants native,avx2-kernels,qemu:EPYC-Milan,qemu:Haswell
    python tools/check_cpu_kinds.py --stages train --variants native,onednn-off-1-thread,qemu:EPYC-Milan

Results of 2026-12-07 (AMD EPYC Zen 4 with AVX-512, 2 cores) are in docs/RELIABILITY.md ("Across
machines").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "native": {},
    "avx2-kernels": {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX "
                                                 "AVX512_CNL AVX512_ICL",
                     "OPENBLAS_CORETYPE": "Haswell", "ONEDNN_MAX_CPU_ISA": "AVX2",
                     "OPENCV_CPU_DISABLE": "AVX512_SKX,AVX512_COMMON,AVX512_KNL,AVX512_KNM,AVX512_CNL,AVX512_CLX"},
    "onednn-off-1-thread": {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1",
                            "TF_NUM_INTEROP_THREADS": "1"},
}


def stage_data(out: Path) -> None:
    import mer_keras  # noqa: F401
    from mer_keras.data.pipeline import build_inputs, read_frame
    from mer_keras.data.synthetic import SyntheticConfig, synthetic_dataset
    from mer_keras.factory import get_spec
    from mer_keras.preprocess.face import get_landmarker

    cache = Path(tempfile.mkdtemp())
    _, samples = synthetic_dataset(SyntheticConfig(subjects=3, clips_per_subject=3, seed=11), cache_dir=cache)
    h = hashlib.sha256()
    for s in samples:
        for p in s.frame_paths:
            h.update(Path(p).read_bytes())
    landmarker = get_landmarker()
    res = {"frames_sha256": np.frombuffer(h.digest(), np.uint8),
           "landmarks": np.stack([landmarker(read_frame(s.frame_paths[s.onset])) for s in samples])}
    for name in ("ststnet", "learnet"):
        res[f"inputs_{name}"] = build_inputs(samples, get_spec(name).data_config(), cache_dir=None)
    np.savez(out, **res)
    shutil.rmtree(cache, ignore_errors=True)


def stage_spot(out: Path) -> None:
    from mer_keras.data.pipeline import read_frame
    from mer_keras.data.spotting import load_spotting
    from mer_keras.data.synthetic.long import LongVideoConfig
    from mer_keras.runtime.spotting import SpotConfig, spot_frames

    cache = Path(tempfile.mkdtemp())
    video = load_spotting("synthetic", synthetic=LongVideoConfig(videos=1, seconds=6, fps=30, seed=3),
                          cache_dir=cache)[0]
    frames = [read_frame(p) for p in video.frames]
    res = {"frames_sha256": hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest()}
    for method in ("analytic", "learned"):
        events, spotter = spot_frames(frames, video.fps, SpotConfig(method=method))
        res[f"{method}_intervals"] = [[i.type, i.onset, i.apex, i.offset, i.score] for i in events]
        signals = {k: [float(v) for v in s] for k, s in spotter.signals.items()}
        res[f"{method}_signals_sha256"] = hashlib.sha256(json.dumps(signals).encode()).hexdigest()
    out.write_text(json.dumps(res))
    shutil.rmtree(cache, ignore_errors=True)


def stage_train(out: Path, inputs: Path) -> None:
    import mer_keras  # noqa: F401
    from mer_keras.train.config import TrainConfig
    from mer_keras.train.fit import fit_model

    data = np.load(inputs)
    y = np.array([0, 1, 2] * (len(data["inputs_ststnet"]) // 3))
    res = {}
    for name, epochs in (("ststnet", 3), ("learnet", 2)):
        x = data[f"inputs_{name}"]
        model = fit_model(x, y, 3, TrainConfig(model=name, epochs=epochs, batch_size=4, seed=3))
        res[f"probabilities_{name}"] = model.predict(x, verbose=0)
        res[f"weights_{name}"] = np.concatenate([w.ravel() for w in model.get_weights()])
    np.savez(out, **res)


def python_for(variant: str, work: Path) -> list[str]:
    """The command that starts this Python for a variant (a qemu wrapper script for ``qemu:<CPU>``)."""
    if not variant.startswith("qemu:"):
        return [sys.executable]
    if not shutil.which("qemu-x86_64"):
        sys.exit("qemu-x86_64 not found (Debian: apt-get install qemu-user)")
    cpu = variant.split(":", 1)[1]
    wrapper = work / f"python-{cpu}"
    # -0 sets argv[0]: sys.executable is then the wrapper, so child processes are emulated too
    wrapper.write_text(f"#!/bin/sh\nexec qemu-x86_64 -cpu {cpu} -0 {wrapper} {os.path.realpath(sys.executable)} "
                       '"$@"\n')
    wrapper.chmod(0o755)
    return [str(wrapper)]


def run_stage(stage: str, variant: str, work: Path, inputs: Path | None) -> Path:
    out = work / f"{stage}-{variant.replace(':', '-')}.{'json' if stage == 'spot' else 'npz'}"
    cmd = [*python_for(variant, work), __file__, "--run-stage", stage, "--out", str(out)]
    if inputs is not None:
        cmd += ["--inputs", str(inputs)]
    env = {**os.environ, **VARIANTS.get(variant, {}), "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"{stage} on {variant} failed:\n" + "\n".join(
            line for line in res.stderr.splitlines()[-30:] if "TCG doesn't support" not in line))
    return out


def compare(a: Path, b: Path) -> dict[str, str]:
    """Per item, ``0`` (every bit equal), the largest absolute difference, or ``differs``."""
    if a.suffix == ".json":
        x, y = json.loads(a.read_text()), json.loads(b.read_text())
        return {k: "0" if x[k] == y[k] else "differs" for k in x}
    x, y = np.load(a), np.load(b)
    return {k: "0" if np.array_equal(x[k], y[k]) else f"{np.abs(x[k].astype(float) - y[k].astype(float)).max():.2g}"
            for k in x.files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", default="data,spot,train")
    ap.add_argument("--variants", default="native,avx2-kernels,onednn-off-1-thread")
    ap.add_argument("--run-stage", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run_stage:
        {"data": lambda: stage_data(Path(args.out)), "spot": lambda: stage_spot(Path(args.out)),
         "train": lambda: stage_train(Path(args.out), Path(args.inputs))}[args.run_stage]()
        return
    variants = args.variants.split(",")
    stages = args.stages.split(",")
    work = Path(tempfile.mkdtemp(prefix="cpu_kinds_"))
    inputs = run_stage("data", "native", work, None) if "train" in stages else None
    for stage in stages:
        outs = {v: (inputs if stage == "data" and v == "native" and inputs else
                    run_stage(stage, v, work, inputs if stage == "train" else None)) for v in variants}
        base = outs[variants[0]]
        for v in variants[1:]:
            diffs = compare(base, outs[v])
            print(f"{stage:6s} {variants[0]} vs {v}: " + ", ".join(f"{k} {d}" for k, d in diffs.items()), flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
