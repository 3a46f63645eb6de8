"""STSTNet: wiring, parameter count and training through the CLI on flow inputs."""

import json

from mer_keras import create_model


def test_shapes_and_parameter_count():
    m = create_model("ststnet", 3)
    counts = {layer.name: layer.count_params() for layer in m.layers}
    assert (counts["stream1_conv"], counts["stream2_conv"], counts["stream3_conv"]) == (84, 140, 224)
    assert m.get_layer("concat").output_shape == (None, 5, 5, 16)
    assert counts["predictions"] == 400 * 3 + 3
    assert m.count_params() == 448 + 401 * 3 == 1651


def test_trains_through_the_cli_on_flow(tiny_flow_run):
    """The session's STSTNet run (tests/conftest.py: ``mer-keras train --model ststnet``, 2 epochs,
    then ``mer-keras export --format all``)."""
    run = tiny_flow_run
    assert json.loads((run / "config.json").read_text())["model"] == "ststnet"
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["preprocessing"]["representation"] == "flow" and meta["input"]["shape"] == [28, 28, 3]
    assert (run / "model_int8.tflite").is_file()
