"""Released models by name (mer_keras.presets): everywhere a model is taken, listed by
``mer-keras models --presets``, and carried by the wheel (a fresh virtual environment predicts with
one, slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mer_keras.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_presets_are_the_released_folders_and_a_path_stays_a_path(tmp_path, monkeypatch):
    from mer_keras.presets import PRESETS_DIR, preset_names, resolve

    assert preset_names() == ["learnet_synthetic_loso", "micro_attention_synthetic_macro",
                              "ststnet_ensemble_megc2019_composite", "ststnet_megc2019_composite",
                              "ststnet_synthetic_micro"]
    assert (ROOT / "saved_models").resolve() == PRESETS_DIR  # the checkout's saved_models/ is the package's
    assert resolve("ststnet_megc2019_composite") == PRESETS_DIR / "ststnet_megc2019_composite"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ststnet_megc2019_composite").mkdir()  # a folder of that name here: the path wins
    assert resolve("ststnet_megc2019_composite") == Path("ststnet_megc2019_composite")
    assert resolve("no_such_thing") == Path("no_such_thing")


def test_load_model_and_predict_take_a_preset_name(short_sample):
    import mer_keras

    model = mer_keras.load_model("ststnet_megc2019_composite")
    assert model.output_shape[-1] == 3 and "ststnet_megc2019_composite" in mer_keras.list_presets()
    table = mer_keras.predict("ststnet_megc2019_composite", [short_sample])
    assert len(table) == 1 and table.loc[0, "predicted"] in ("negative", "positive", "surprise")
    from mer_keras.errors import MerKerasError

    with pytest.raises(MerKerasError, match="nor a preset; presets: learnet_synthetic_loso"):
        mer_keras.load_model("ststnet_composite")


def test_models_lists_the_presets_and_export_refuses_to_write_into_one():
    res = CliRunner().invoke(app, ["models", "--presets"])
    assert res.exit_code == 0, res.output
    assert "ststnet_megc2019_composite" in res.output and "0.724" in res.output and "initial weights" in res.output
    res = CliRunner().invoke(app, ["export", "ststnet_megc2019_composite", "--format", "tflite"])
    assert res.exit_code == 2 and "a released preset, shipped with its exports" in " ".join(res.output.split())


def test_edge_runner_and_init_from_take_a_preset_name(tmp_path):
    from mer_keras.jobs.resolve import resolve_options
    from mer_keras.jobs.train_options import TrainOptions
    from mer_keras.presets import PRESETS_DIR
    from mer_keras.train.transfer import resolve_init_source

    out = subprocess.run([sys.executable, "-m", "edge.run", "--model", "ststnet_megc2019_composite", "--video",
                          str(ROOT / "edge" / "sample.mp4"), "--max-frames", "100", "--mode", "windows"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1])["event"] == "summary"
    opts, _ = resolve_options(TrainOptions(model="micro_attention", init_from="micro_attention_synthetic_macro"))
    assert opts.init_from == str(PRESETS_DIR / "micro_attention_synthetic_macro")
    assert resolve_init_source("micro_attention_synthetic_macro").name == "weights_fp16.h5"


@pytest.mark.slow
def test_the_wheel_carries_the_presets_and_the_sample_into_a_fresh_environment(tmp_path):
    """``pip wheel .``, installed (without dependencies) in a fresh virtual environment that sees the
    stack installed here: predict with a preset by name on the shipped sample, from another folder,
    using the installed package (not the checkout). About a minute."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(wheels)], check=True, timeout=600, cwd=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", *map(str, wheels.glob("*.whl"))],
                   check=True, timeout=600)
    code = ("import mer_keras, edge, pathlib\n"
            "from mer_keras.presets import PRESETS_DIR\n"
            "assert str(venv) in mer_keras.__file__, mer_keras.__file__\n"
            "sample = pathlib.Path(edge.__file__).with_name('sample.mp4')\n"
            "table = mer_keras.predict('ststnet_ensemble_megc2019_composite', [sample])\n"
            "print(PRESETS_DIR, len(table), table.loc[0, 'predicted'])\n").replace("venv", repr(str(venv)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed wheel, not a checkout
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    presets_dir, rows, label = out.stdout.split()[-3:]
    assert presets_dir.startswith(str(venv)) and rows == "1" and label in ("negative", "positive", "surprise")


def test_models_lists_one_line_per_architecture_and_details_one():
    """`mer-keras models`: one line per registered model, whatever the terminal's width; `--model
    NAME` gives its recipes with their source; an unknown name is one line, exit 2."""
    from mer_keras.factory import list_models

    res = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 + len(list_models()) + 1 and all(any(line.startswith(m) for line in lines)
                                                             for m in list_models())
    res = CliRunner().invoke(app, ["models", "--model", "ststnet"])
    assert res.exit_code == 0 and "recipe paper" in res.output and "500 epochs" in res.output
    res = CliRunner().invoke(app, ["models", "--model", "nope"])
    assert res.exit_code == 2 and "unknown model 'nope'" in res.output
