"""Numbers that are not numbers (issue 22): the option schema's checks, the library configs' checks,
and a fit whose loss becomes NaN stopping with the fold and epoch named."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from mer_keras.errors import OptionError
from mer_keras.jobs.schema import flag_name, validate
from mer_keras.jobs.train_options import TrainOptions, options_from_config


@pytest.mark.parametrize("change, message", [
    ({"lr": math.nan}, "--lr nan: expected a finite number above 0"),
    ({"lr": -math.inf}, "--lr -inf: expected a finite number above 0"),
    ({"lr": 10 ** 400}, "expected a finite number above 0"),
    ({"batch_size": 2.5}, "--batch-size 2.5: expected a whole number from 1 to 65536"),
    ({"batch_size": 10 ** 11}, "--batch-size 100000000000: expected a whole number from 1 to 65536"),
    ({"epochs": True}, "--epochs True: expected a whole number from 1 to 100000"),
    ({"seed": -1}, "--seed -1: expected a whole number from 0 to 4294967295"),
    ({"seed": 1.0}, "--seed 1.0: expected a whole number"),
    ({"workers": None}, "--workers None: expected a whole number"),
    ({"export": "no"}, "--export 'no': expected true or false"),
    ({"backup_minutes": math.inf}, "--backup-minutes inf: expected a finite number, at least 0"),
    ({"aux_weights": {"proposal": -1.0}}, "the weight of 'proposal' is -1.0; expected a finite number >= 0"),
])
def test_the_schema_refuses_numbers_that_are_not_numbers(change, message):
    with pytest.raises(OptionError) as err:
        validate(TrainOptions(**change))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_number_option_of_train_has_bounds():
    """A numeric option without bounds would let 0, a negative or a huge value through."""
    import typing

    hints = typing.get_type_hints(TrainOptions)
    for f in fields(TrainOptions):
        kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
        if kinds & {int, float} and bool not in kinds:
            assert f.metadata["min"] is not None or f.metadata["above"] is not None, flag_name(f)
            assert f.name in ("lr", "backup_minutes") or f.metadata["max"] is not None, flag_name(f)


def test_a_recorded_option_is_refused_naming_the_file_and_key():
    with pytest.raises(OptionError, match=r'^runs/x/config.json: "lr" is nan, expected a finite number above 0$'):
        options_from_config({"lr": math.nan}, "runs/x/config.json")
    with pytest.raises(OptionError, match=r'"batch_size" is 0, expected a whole number from 1 to 65536'):
        options_from_config({"batch_size": 0}, "runs/x/config.json")
    with pytest.raises(OptionError, match=r'"augment" is \'false\', expected true or false'):
        options_from_config({"augment": "false"}, "runs/x/config.json")
    assert options_from_config({"data": None, "lr": 1e308}).data == "synthetic"  # old runs; a valid number


def test_the_library_configs_refuse_bad_numbers():
    from mer_keras.data.synthetic.config import SyntheticConfig
    from mer_keras.data.synthetic.long import LongVideoConfig
    from mer_keras.export.exporter import QATOptions
    from mer_keras.runtime.spotting import SpotConfig
    from mer_keras.train.config import TrainConfig

    for make, match in [(lambda: TrainConfig(batch_size=0), "--batch-size 0"),  # was a ZeroDivisionError
                        (lambda: TrainConfig(lr=math.nan), "--lr nan"),
                        (lambda: TrainConfig(epochs=2.0), "--epochs 2.0"),
                        (lambda: SyntheticConfig(seed=2 ** 32), "seed 4294967296"),
                        (lambda: SyntheticConfig(noise_sigma=(1.0, math.inf)), "noise_sigma"),
                        (lambda: LongVideoConfig(seconds=math.inf), "seconds inf"),
                        (lambda: LongVideoConfig(videos=1.5), "videos 1.5"),
                        (lambda: QATOptions(epochs=0), "--qat-epochs 0")]:
        with pytest.raises(OptionError, match=match):
            make()
    for bad in ({"min_snr": -1.0}, {"blink_ratio": math.nan}, {"min_duration": -0.1}, {"size": 128.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SpotConfig(**bad)
    TrainConfig(), SyntheticConfig(), LongVideoConfig(), QATOptions(), SpotConfig()  # the defaults pass


def test_a_search_space_is_checked_from_text_and_from_python():
    from mer_keras.train.nested import check_space, parse_space

    with pytest.raises(OptionError, match=r"'1e30' is not a valid batch_size \(expected at most 65536\)"):
        parse_space(["batch_size=1e30"])  # was a TypeError from numpy
    with pytest.raises(OptionError, match=r"'nan' is not a valid lr \(expected a finite number above 0\)"):
        parse_space(["lr=nan"])
    assert check_space({"lr": [1e-3], "epochs": [40, 80]}) is None
    assert check_space({"lr": [math.nan]}) == "lr value nan: expected a finite number above 0"
    assert check_space({"epochs": [2.5]}) == "epochs value 2.5: expected a whole number"
    assert "cannot be searched" in check_space({"dropout": [0.1]})


def test_a_non_finite_loss_stops_that_fold_naming_it_and_its_epoch():
    """The one divergence check of every program (one fold or many): the fold that diverged is
    switched off and its figures leave the epoch's logs; the fit ends when every fold has stopped;
    the message names the fold, the epoch and the learning rate."""
    from mer_keras.train.program import FoldDivergence, fold_outcomes

    class Model:
        stop_training = False

    stopped = []
    check = FoldDivergence(["fold a", "fold b", "fold c"], epochs=5, stop_folds=stopped.extend)
    check.set_model(Model())
    logs = {"loss": 1.0, "fold0_train_loss": 1.0, "fold0_accuracy": 0.5, "fold1_train_loss": math.inf,
            "fold1_accuracy": 0.3, "fold2_train_loss": 0.9}
    check.on_epoch_end(0, logs)
    assert stopped == [1] and check.diverged == {1: (1, math.inf)}
    assert "fold1_train_loss" not in logs and "fold1_accuracy" not in logs and logs["fold0_train_loss"] == 1.0
    assert not check.model.stop_training
    check.on_epoch_end(1, {"fold0_train_loss": math.nan, "fold2_train_loss": math.nan})
    assert stopped == [1, 0, 2] and check.model.stop_training
    history = {"fold0_train_loss": [1.0], "fold0_accuracy": [0.5], "fold2_train_loss": [0.9], "fold2_accuracy": [0.4]}
    results = fold_outcomes(["fold a", "fold b", "fold c"], check, history, lambda i: [np.ones(2)],
                            lambda w: None, lr=1e6)
    assert results[1].diverged.startswith("fold b: the training loss is inf at epoch 1 of 5; the learning rate "
                                          "1e+06 is likely too large (try a smaller --lr)")
    assert results[0].diverged.startswith("fold a: the training loss is nan at epoch 2 of 5")
    assert all(r.final_loss is None for r in results)
    ok = fold_outcomes(["fold a"], FoldDivergence(["fold a"], 5), {"fold0_train_loss": [0.7]},
                       lambda i: [np.array([np.nan])], lambda w: None, lr=None)
    assert ok[0].diverged.startswith("fold a: the weights became NaN or infinite at epoch 5 of 5")


def test_a_nan_input_is_named_before_training_not_blamed_on_the_learning_rate():
    """A NaN input of one of K folds trained at once is found before any step, naming that fold and
    the sample: where the loss would become NaN depends on the batch order and on the CPU's
    arithmetic (it was epoch 1 on AMD CPUs, epoch 2 on an Intel one with AVX-512), and the learning
    rate is not the cause."""
    from mer_keras.errors import DataError
    from mer_keras.train.config import TrainConfig
    from mer_keras.train.fit import FoldTrainer
    from mer_keras.train.vectorized.trainer import VectorizedTrainer

    rng = np.random.default_rng(0)
    xs = [rng.uniform(0, 255, (6, 28, 28, 3)).astype(np.float32) for _ in range(2)]
    ys = [np.array([0, 1, 2, 0, 1, 2]) for _ in range(2)]
    xs[1][2] = np.nan
    xs[1][4, 0, 0, 0] = np.inf
    cfg = TrainConfig(model="ststnet", epochs=2, batch_size=3, augment=False)
    trainer = VectorizedTrainer((28, 28, 3), 3, cfg)
    with pytest.raises(DataError, match=r"^fold sub02: input sample 3 of 6 holds NaN values \(and 1 more sample"
                                        r"\(s\)\); network inputs must be finite numbers") as err:
        trainer.fit_program(np.concatenate(xs), np.concatenate(ys), [np.arange(6), np.arange(6, 12)],
                            labels=["fold sub01", "fold sub02"])
    assert "learning rate" not in str(err.value)
    xs[0][5, 1, 1, 1] = -np.inf
    with pytest.raises(DataError, match=r"^the final model: input sample 6 of 6 holds infinite values;"):
        FoldTrainer((28, 28, 3), 3, cfg).fit(xs[0], ys[0], label="the final model")


def test_numpy_numbers_are_numbers_and_models_refuse_impossible_shapes():
    """``np.int64(4)`` is the whole number 4 (kept as Python's int); a model with 10**12 classes or
    a 2-D input shape is refused with one line, not a TensorFlow error (issue 31)."""
    from mer_keras import create_model
    from mer_keras.jobs.schema import validate
    from mer_keras.jobs.train_options import TrainOptions

    opts = TrainOptions(batch_size=np.int64(4), lr=np.float32(0.5), augment=np.bool_(False))
    validate(opts)
    assert (opts.batch_size, type(opts.batch_size), type(opts.lr), opts.augment) == (4, int, float, False)
    with pytest.raises(OptionError, match=r"^--batch-size 4.5: expected a whole number"):
        validate(TrainOptions(batch_size=np.float64(4.5)))
    with pytest.raises(OptionError, match=r"^num_classes 1000000000000: expected at most 1000"):
        create_model("ststnet", 10**12)
    with pytest.raises(OptionError, match=r"^input_shape \(28, 28\): ststnet takes 3 dimensions \(\(H, W, C\)\)"):
        create_model("ststnet", 3, input_shape=(28, 28))
    with pytest.raises(OptionError, match=r"^input_shape 28: expected a tuple like \(28, 28, 3\)"):
        create_model("ststnet", 3, input_shape=28)
