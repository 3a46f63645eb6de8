"""STSTNet: wiring, parameter count and training through the CLI on flow inputs."""

import json
from pathlib import Path

from typer.testing import CliRunner

from mer_keras import create_model
from mer_keras.cli.main import app


def test_shapes_and_parameter_count():
    m = create_model("ststnet", 3)
    counts = {layer.name: layer.count_params() for layer in m.layers}
    assert (counts["stream1_conv"], counts["stream2_conv"], counts["stream3_conv"]) == (84, 140, 224)
    assert m.get_layer("concat").output_shape == (None, 5, 5, 16)
    assert counts["predictions"] == 400 * 3 + 3
    assert m.count_params() == 448 + 401 * 3 == 1651


def test_trains_through_the_cli_on_flow(tmp_path, cache_dir):
    res = CliRunner().invoke(app, ["train", "--model", "ststnet", "--subjects", "3", "--clips", "4", "--seed", "7",
                                   "--epochs", "2", "--out", str(tmp_path), "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["preprocessing"]["representation"] == "flow" and meta["input"]["shape"] == [28, 28, 3]
    assert (run / "model_int8.tflite").is_file()
