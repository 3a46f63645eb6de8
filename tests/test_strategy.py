"""MirroredStrategy with 2 replicas on a CPU split into 2 logical devices (the GPU path on CPU)."""

import subprocess
import sys
import textwrap


def test_mirrored_two_replicas_train_on_split_cpu():
    code = textwrap.dedent("""
        import numpy as np
        import mer_keras
        from mer_keras.train.strategy import get_strategy, split_cpu
        from mer_keras.train.trainer import TrainConfig, fit_model, predict_proba
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
