"""tf.distribute on CPU: MirroredStrategy over 2 logical devices, and MultiWorkerMirroredStrategy over two
worker processes on 127.0.0.1 (training together, and killed and resumed).

Each of those starts fresh Python processes (TensorFlow must be configured before it initialises),
10 to 20 s apiece even for the smallest job: they are slow (``pytest -m slow``). The default run
trains under MirroredStrategy in-process (one replica: the same scope, mirrored variables and
distributed input pipeline) and checks the ``TF_CONFIG`` parsing of the multi-worker strategy.
"""

import subprocess
import sys
import textwrap

import pytest


def test_mirrored_strategy_trains_in_process():
    """The ``mirrored`` strategy (here over this process's single CPU device) builds mirrored
    variables and trains and predicts through ``fit_model``; two replicas: the slow test below."""
    import numpy as np

    from mer_keras._keras import tf
    from mer_keras.models.inference import predict_proba
    from mer_keras.train.fit import TrainConfig, fit_model
    from mer_keras.train.strategy import get_strategy

    s = get_strategy("mirrored")
    assert isinstance(s, tf.distribute.MirroredStrategy) and s.num_replicas_in_sync == 1
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 28, 28, 3)).astype("float32")
    y = np.arange(16) % 2
    m = fit_model(x, y, 2, TrainConfig(model="ststnet", epochs=1, batch_size=8), s)
    assert m.distribute_strategy is s
    assert all(isinstance(w, tf.distribute.DistributedValues) for w in m.trainable_weights)
    assert len(m.history.history["loss"]) == 1
    p = predict_proba(m, x)
    assert p.shape == (16, 2) and np.isfinite(p).all()


@pytest.mark.slow
def test_mirrored_two_replicas_train_on_split_cpu():
    code = textwrap.dedent("""
        import numpy as np
        import mer_keras
        from mer_keras.train.strategy import get_strategy, split_cpu
        from mer_keras.models.inference import predict_proba
        from mer_keras.train.fit import TrainConfig, fit_model
        split_cpu(2)
        s = get_strategy("mirrored")
        assert s.num_replicas_in_sync == 2, s.num_replicas_in_sync
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (16, 64, 64, 3)).astype("float32")
        y = np.arange(16) % 2
        m = fit_model(x, y, 2, TrainConfig(epochs=1, batch_size=8), s)
        p = predict_proba(m, x)
        assert p.shape == (16, 2) and np.isfinite(p).all()
        print("replicas", s.num_replicas_in_sync)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "replicas 2" in res.stdout


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_local_workers_train_one_run_together(tmp_path, cache_dir):
    """`--strategy multiworker`: two worker processes on 127.0.0.1 run the same LOSO job; the chief
    writes the run, both end with the same final weights (printed fingerprint = the saved model's)."""
    from pathlib import Path

    args = ["train", "--model", "off_apexnet", "--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "3",
            "--no-export", "--strategy", "multiworker", "--out", str(tmp_path), "--cache-dir", str(cache_dir)]
    procs = launch_workers(args)
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            outs.append(out)
            assert p.returncode == 0, err[-3000:]
    finally:
        for p in procs:
            p.kill()
    runs = [o.strip().splitlines()[-1].strip() for o in outs]
    assert runs[0] == runs[1]
    prints = [[line for line in o.splitlines() if "final model weights sha256" in line] for o in outs]
    assert prints[0] and prints[0] == prints[1]
    assert "non-chief" in outs[1] and "2 replica(s)" in outs[0]
    run = Path(runs[0])
    assert (run / "results.json").exists() and len(list((run / "folds").glob("*.json"))) == 3
    from mer_keras.models.io import load_model
    from mer_keras.train.fit import weights_fingerprint

    assert prints[0][0].split()[-1] == weights_fingerprint(load_model(run / "model.keras"))


def test_multiworker_needs_a_valid_tf_config():
    from mer_keras.train.strategy import parse_tf_config

    for bad, message in [(None, "needs the TF_CONFIG"), ("{", "not a cluster"), ('{"cluster": {}}', "not a cluster"),
                         ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "not in its cluster")]:
        with pytest.raises(ValueError, match=message):
            parse_tf_config(bad)


def launch_workers(args, per_worker=None):
    """Start two `mer-keras` worker processes on 127.0.0.1 with a TF_CONFIG on free ports
    (``per_worker``: a list of argv, one per worker, instead of ``args`` for both)."""
    import json
    import os

    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    return [subprocess.Popen([sys.executable, "-m", "mer_keras.cli.main", *(per_worker[i] if per_worker else args)],
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                  "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]


@pytest.mark.slow
def test_killed_workers_resume_to_the_uninterrupted_result(tmp_path, cache_dir):
    """SIGKILL both workers mid-fold, relaunch both with --resume: same predictions and final weights."""
    import json
    import os
    import signal
    import time

    base = ["train", "--model", "off_apexnet", "--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "30",
            "--no-export", "--strategy", "multiworker", "--backup-minutes", "0", "--cache-dir", str(cache_dir)]

    def finish(procs):
        outs = [p.communicate(timeout=600)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        return [line for o in outs for line in o.splitlines() if "final model weights sha256" in line]

    reference = finish(launch_workers(base + ["--out", str(tmp_path / "ref")]))
    procs = launch_workers(base + ["--out", str(tmp_path / "kill")])
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "kill").glob("*/backup/synthetic__sub02/chief/ckpt-*.index")):
        time.sleep(0.02)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    run = next((tmp_path / "kill").glob("*"))
    assert sorted(f.name for f in (run / "folds").glob("*.json")) == ["synthetic__sub01.json"]
    # Workers that do not see the same run (no shared disk): all stop with exit 2, none hangs.
    import shutil

    elsewhere = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, elsewhere)
    (elsewhere / "folds" / "synthetic__sub01.json").unlink()
    procs = launch_workers(None, per_worker=[["train", "--resume", str(run)], ["train", "--resume", str(elsewhere)]])
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [2, 2] and all("different numbers of finished folds" in e for e in errors)
    resumed = finish(launch_workers(["train", "--resume", str(run)]))
    ref_run = next((tmp_path / "ref").glob("*"))
    assert (run / "predictions.csv").read_text() == (ref_run / "predictions.csv").read_text()
    assert json.loads((run / "results.json").read_text())["overall"] == json.loads(
        (ref_run / "results.json").read_text())["overall"]
    assert set(resumed) == set(reference) and len(resumed) == 2
