"""Every entry point against the corrupted-file corpus: one clear message naming the file or row.

:data:`CASES` is the one table of bad inputs: each case names the input, the entry point (the
``mer-keras`` CLI through typer's CliRunner, ``python -m edge.run`` in a subprocess where
TensorFlow cannot load, or a library call), the expected outcome and two message fragments: where
(the file, or sheet:row / csv:row) and what is wrong. The outcomes:

* exit code 2 with one ``error:`` line (CLI) or one stderr line (edge runner), no traceback;
* :data:`SKIPPED`: without ``--strict`` a bad clip is left out and listed (where: why) while the
  command goes on and exits 0;
* an exception type for library calls (``ModelFileError``, ``ValueError``...);
* exit 0 for what is documented as reported, not fatal (a video without a face).

No case may run code carried by a model file: the corpus's payloads create ``corpus.marker``.
``tools/reliability_table.py`` runs the same table and prints it as Markdown.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.cases import SHEET, SKIPPED, Case, _call
from tests.helpers.corrupt import MANIFEST_ROWS, Corpus, bad_rows, build_corpus
from tests.robustness import kinds

ROOT = Path(__file__).resolve().parents[2]

@dataclass
class Outcome:
    """What an entry point did with a case.

    Attributes:
        code: exit code (CLI, edge runner); None for a library call.
        output: everything printed; for a library call ``Type: message`` of its exception.
        error: the exception a library call raised (None if none).
        traceback: an exception escaped the entry point (CLI or edge runner).
        code_ran: the corpus marker appeared: code carried by a model file was executed.
    """

    code: int | None
    output: str
    error: BaseException | None = None
    traceback: bool = False
    code_ran: bool = False


def _load_model(rel: str) -> Callable:
    return _call("mer_keras.load_model", lambda load_model, c: load_model(c / rel))


def _cases() -> list[Case]:
    from mer_keras.errors import ModelFileError
    from mer_keras.preprocess.face import FaceNotFoundError

    prepare = ["data", "prepare", "casme2", "--cache-dir", "{c}/cache", "--root"]
    manifest = ["data", "prepare", "manifest", "--cache-dir", "{c}/cache", "--root"]
    edge = ["--model", "{c}/models/good.tflite", "--video"]
    small_eval = ["--subjects", "2", "--clips", "1", "--cache-dir", "{c}/cache"]  # in case the set is built first
    cases = [
        # database roots, layouts and sheets
        Case("database root that does not exist", "cli", prepare + ["{c}/db/missing"], 2, "{c}/db/missing",
             "does not exist"),
        Case("database root that is a file", "cli", prepare + ["{c}/db/file_root"], 2, "{c}/db/file_root",
             "not a folder"),
        Case("database folder without its coding sheet", "cli", prepare + ["{c}/db/no_sheet"], 2, "{c}/db/no_sheet",
             "no coding sheet matching"),
        Case("database folder without its frame folder", "cli", prepare + ["{c}/db/no_frames"], 2,
             "{c}/db/no_frames/Cropped", "does not exist"),
        Case("SMIC folder without its camera folder", "cli",
             ["data", "prepare", "smic", "--root", "{c}/db/smic_without_hs"], 2, "{c}/db/smic_without_hs/SMIC/HS",
             "does not exist"),
        Case("coding sheet with a missing column", "cli", prepare + ["{c}/db/missing_column"], 2,
             f"{{c}}/db/missing_column/{SHEET}", "no header row with columns"),
        Case("text file named .xlsx as coding sheet", "cli", prepare + ["{c}/db/text_sheet"], 2,
             f"{{c}}/db/text_sheet/{SHEET}", "not a readable coding sheet"),
        Case("zero-byte .xlsx coding sheet", "cli", prepare + ["{c}/db/zero_sheet"], 2,
             f"{{c}}/db/zero_sheet/{SHEET}", "not a readable coding sheet"),
        Case("truncated .xlsx coding sheet", "cli", prepare + ["{c}/db/truncated_sheet"], 2,
             f"{{c}}/db/truncated_sheet/{SHEET}", "not a readable coding sheet"),
        Case("CSV coding sheet with a missing column", "call",
             _call("mer_keras.data.sheets.read_sheet", lambda f, c: f(c / "db/csv_sheet_missing_column.csv",
                                                                     ["Subject", "Filename", "OnsetFrame"])),
             ValueError, "{c}/db/csv_sheet_missing_column.csv", "no header row with columns"),
    ]
    for i, r in enumerate(bad_rows()):
        what = r.kind.replace("_", " ")
        cases.append(Case(f"sheet row: {what} (--strict)", "cli", prepare + [f"{{c}}/db/strict/{r.kind}", "--strict"], 2,
                          f"{{c}}/db/strict/{r.kind}/{SHEET}:2", r.reason))
        cases.append(Case(f"sheet row: {what}", "cli", prepare + ["{c}/db/rows"], SKIPPED,
                          f"{{c}}/db/rows/{SHEET}:{i + 3}", r.reason))
    cases += [
        Case("every clip bad, without --strict", "cli", prepare + ["{c}/db/strict/unknown_emotion"], 2,
             f"{{c}}/db/strict/unknown_emotion/{SHEET}:2", "no usable sample"),
        Case("CASME II loader, --strict, first bad row", "call",
             _call("mer_keras.data.casme2.load", lambda f, c: f(c / "db/rows", strict=True)),
             ValueError, f"{{c}}/db/rows/{SHEET}:3", "frame number 'abc'"),
        # manifests
        Case("manifest that does not exist", "cli", manifest + ["{c}/manifests/missing.csv"], 2,
             "{c}/manifests/missing.csv", "does not exist"),
        Case("zero-byte manifest", "cli", manifest + ["{c}/manifests/zero.csv"], 2, "{c}/manifests/zero.csv",
             "not a readable manifest CSV"),
        Case("random bytes as manifest", "cli", manifest + ["{c}/manifests/binary.csv"], 2,
             "{c}/manifests/binary.csv", "not a readable manifest CSV"),
        Case("manifest with an unclosed quote", "cli", manifest + ["{c}/manifests/unclosed_quote.csv"], 2,
             "{c}/manifests/unclosed_quote.csv", "not a readable manifest CSV"),
        Case("manifest without its columns", "cli", manifest + ["{c}/manifests/missing_columns.csv"], 2,
             "{c}/manifests/missing_columns.csv", "needs columns subject, label"),
    ]
    for i, (kind, (_, reason)) in enumerate(MANIFEST_ROWS.items()):
        what = kind.replace("_", " ")
        cases.append(Case(f"manifest row: {what} (--strict)", "cli",
                          manifest + [f"{{c}}/manifests/strict_{kind}.csv", "--strict"], 2,
                          f"{{c}}/manifests/strict_{kind}.csv:2", reason))
        cases.append(Case(f"manifest row: {what}", "cli", manifest + ["{c}/manifests/rows.csv"], SKIPPED,
                          f"{{c}}/manifests/rows.csv:{i + 3}", reason))
    cases += [
        Case("manifest loader, --strict, first bad row", "call",
             _call("mer_keras.data.manifest.load",
                   lambda f, c: f(c / "manifests/rows.csv", strict=True, cache_dir=c / "cache")),
             ValueError, "{c}/manifests/rows.csv:3", "frame number 'abc'"),
        Case("1-frame video as a clip", "call",
             _call("mer_keras.preprocess.video.extract_frames",
                   lambda f, c: f(c / "videos/one_frame.mp4", c / "cache")),
             ValueError, "{c}/videos/one_frame.mp4", "1 decodable frame(s)"),
        Case("clip without a face (blank frames)", "call",
             _call("mer_keras.preprocess.representation.representation_from_frames", _blank_clip),
             FaceNotFoundError, "blank-clip", "no face found in the onset frame"),
        # model files, library
        Case("zero-byte .keras", "call", _load_model("models/zero.keras"), ModelFileError, "{c}/models/zero.keras",
             "empty file"),
        Case("truncated .keras", "call", _load_model("models/truncated.keras"), ModelFileError,
             "{c}/models/truncated.keras", "not a Keras archive"),
        Case("zip file that is not a Keras archive", "call", _load_model("models/foreign_zip.keras"), ModelFileError,
             "{c}/models/foreign_zip.keras", "not a Keras v3 archive"),
        Case(".keras with a Lambda layer", "call", _load_model("models/lambda.keras"), ModelFileError,
             "{c}/models/lambda.keras", "Lambda layer"),
        Case("legacy .h5 model", "call", _load_model("models/legacy.h5"), ModelFileError, "{c}/models/legacy.h5",
             "expected a .keras file"),
        Case("HDF5 model with Lambda code renamed .keras", "call", _load_model("models/h5_renamed.keras"),
             ModelFileError, "{c}/models/h5_renamed.keras", "HDF5"),
        Case(".keras with pickled .npz weights", "call", _load_model("models/npz_pickle.keras"), ModelFileError,
             "{c}/models/npz_pickle.keras", "model.weights.npz"),
        Case(".keras whose config names another Python module", "call", _load_model("models/foreign_module.keras"),
             ModelFileError, "{c}/models/foreign_module.keras", "subprocess"),
        Case("model path that does not exist", "call", _load_model("models/none.keras"), ModelFileError,
             "{c}/models/none.keras", "no model at"),
        Case("folder without model.keras", "call", _load_model("runs/not_a_run"), ModelFileError,
             "{c}/runs/not_a_run/model.keras", "no model at"),
        Case("truncated .tflite", "call",
             _call("mer_keras.runtime.tflite.TFLiteModel", lambda f, c: f(c / "models/tflite/truncated.tflite")),
             ValueError, "{c}/models/tflite/truncated.tflite", "not a loadable TFLite model"),
        # model files, CLI
        Case("run whose model.keras is truncated", "cli", ["export", "{c}/runs/truncated_model"], 2,
             "{c}/runs/truncated_model/model.keras", "not a Keras archive"),
        Case("run whose model.keras has a Lambda layer", "cli", ["export", "{c}/runs/lambda_model"], 2,
             "{c}/runs/lambda_model/model.keras", "Lambda layer"),
        Case("run whose model.keras carries pickled weights", "cli", ["export", "{c}/runs/npz_pickle_model"], 2,
             "{c}/runs/npz_pickle_model/model.keras", "model.weights.npz"),
        Case("folder that is not a run", "cli", ["export", "{c}/runs/not_a_run"], 2, "{c}/runs/not_a_run",
             "not a finished run folder"),
        Case("run whose model.keras is a foreign zip", "cli", ["explain", "{c}/runs/foreign_zip_model", "--sample",
                                                               "sub01/clip001"], 2,
             "{c}/runs/foreign_zip_model/model.keras", "not a Keras v3 archive"),
        Case("run whose model.keras is empty", "cli", ["evaluate", "{c}/runs/zero_model", *small_eval], 2,
             "{c}/runs/zero_model/model.keras", "empty file"),
        Case("truncated .tflite to evaluate", "cli",
             ["evaluate", "{c}/runs/truncated_tflite/model_fp32.tflite", *small_eval], 2,
             "{c}/runs/truncated_tflite/model_fp32.tflite", "not a loadable TFLite model"),
        Case("run whose metadata.json is truncated", "cli", ["evaluate", "{c}/runs/bad_metadata"], 2,
             "{c}/runs/bad_metadata/metadata.json", "not readable JSON"),
        Case(".tflite whose input differs from its metadata.json, to evaluate", "cli",
             ["evaluate", "{c}/models/mismatch/model.tflite", *small_eval], 2, "{c}/models/mismatch/model.tflite",
             "the model takes (28, 28, 3)"),
        Case("run whose config.json is truncated", "cli", ["export", "{c}/runs/bad_config"], 2,
             "{c}/runs/bad_config/config.json", "not readable JSON"),
        Case("run whose config.json lacks its fields", "cli", ["export", "{c}/runs/incomplete_config"], 2,
             "{c}/runs/incomplete_config", "lacks a field"),
        Case("run whose config.json lacks its fields, to explain", "cli",
             ["explain", "{c}/runs/incomplete_config", "--sample", "sub01/clip001"], 2,
             "{c}/runs/incomplete_config/config.json", "missing or invalid field"),
        Case("interrupted run whose config.json is truncated", "cli", ["train", "--resume", "{c}/runs/bad_config"], 2,
             "{c}/runs/bad_config/config.json", "not readable JSON"),
        Case("truncated .xlsx coding sheet to train on", "cli",
             ["train", "--data", "casme2", "--root", "{c}/db/truncated_sheet", "--out", "{c}/train_out",
              "--cache-dir", "{c}/cache"], 2, f"{{c}}/db/truncated_sheet/{SHEET}", "not a readable coding sheet"),
        Case("bad manifest row to train on (--strict)", "cli",
             ["train", "--data", "manifest", "--root", "{c}/manifests/rows.csv", "--strict", "--out", "{c}/train_out",
              "--cache-dir", "{c}/cache"], 2, "{c}/manifests/rows.csv:3", "frame number 'abc'"),
        Case("HDF5 model renamed .keras as --init-from", "cli",
             ["train", "--init-from", "{c}/models/h5_renamed.keras", "--data", "manifest", "--root",
              "{c}/manifests/rows.csv", "--epochs", "1", "--no-export", "--out", "{c}/train_out", "--cache-dir",
              "{c}/cache"], 2, "{c}/models/h5_renamed.keras", "HDF5"),
        # the edge runner
        Case("model file that does not exist", "edge.run", ["--model", "{c}/models/tflite/none.tflite", "--video",
                                                        "{c}/videos/good.mp4"], 2,
             "{c}/models/tflite/none.tflite", "not a loadable TFLite model"),
        Case("zero-byte .tflite", "edge.run", ["--model", "{c}/models/tflite/zero.tflite", "--video", "{c}/videos/good.mp4"],
             2, "{c}/models/tflite/zero.tflite", "not a loadable TFLite model"),
        Case("truncated .tflite", "edge.run", ["--model", "{c}/models/tflite/truncated.tflite", "--video",
                                           "{c}/videos/good.mp4"], 2,
             "{c}/models/tflite/truncated.tflite", "not a loadable TFLite model"),
        Case("random bytes named .tflite", "edge.run", ["--model", "{c}/models/tflite/random.tflite", "--video",
                                                    "{c}/videos/good.mp4"], 2,
             "{c}/models/tflite/random.tflite", "not a loadable TFLite model"),
        Case("Keras archive named .tflite", "edge.run", ["--model", "{c}/models/tflite/keras_model.tflite", "--video",
                                                     "{c}/videos/good.mp4"], 2,
             "{c}/models/tflite/keras_model.tflite", "not a loadable TFLite model"),
        Case(".tflite whose input differs from its metadata.json", "edge.run",
             ["--model", "{c}/models/mismatch/model.tflite", "--video", "{c}/videos/good.mp4"], 2,
             "{c}/models/mismatch/model.tflite", "the model takes (28, 28, 3)"),
        Case("truncated metadata.json", "edge.run", ["--model", "{c}/models/bad_metadata/model.tflite", "--video",
                                                 "{c}/videos/good.mp4"], 2,
             "{c}/models/bad_metadata/metadata.json", "cannot read metadata"),
        Case("metadata.json without preprocessing", "edge.run",
             ["--model", "{c}/models/no_preprocessing/model.tflite", "--video", "{c}/videos/good.mp4"], 2,
             "{c}/models/no_preprocessing/metadata.json", "missing or invalid field"),
        Case("no metadata.json beside the model", "edge.run",
             ["--model", "{c}/models/no_metadata/model.tflite", "--video", "{c}/videos/good.mp4"], 2,
             "{c}/models/no_metadata/metadata.json", "cannot read metadata"),
        Case("video file that does not exist", "edge.run", edge + ["{c}/videos/none.mp4"], 2, "{c}/videos/none.mp4",
             "no such video file"),
        Case("zero-byte .mp4", "edge.run", edge + ["{c}/videos/zero.mp4"], 2, "{c}/videos/zero.mp4", "cannot open"),
        Case("truncated .mp4", "edge.run", edge + ["{c}/videos/truncated.mp4"], 2, "{c}/videos/truncated.mp4",
             "cannot open"),
        Case("text file named .avi", "edge.run", edge + ["{c}/videos/text.avi"], 2, "{c}/videos/text.avi", "cannot open"),
        Case("1-frame video", "edge.run", edge + ["{c}/videos/one_frame.mp4"], 2, "{c}/videos/one_frame.mp4",
             "only 1 frame"),
        Case("camera that does not open", "edge.run", ["--model", "{c}/models/good.tflite", "--camera", "57"], 2,
             "camera 57", "cannot open"),
        Case("annotated video into a folder that does not exist", "edge.run",
             edge + ["{c}/videos/good.mp4", "--annotate", "{c}/nowhere/out.mp4"], 2, "{c}/nowhere/out.mp4",
             "cannot write a video there"),
        Case("binary metadata.json", "edge.run", ["--model", "{c}/models/binary_metadata/model.tflite", "--video",
                                                  "{c}/videos/good.mp4"], 2,
             "{c}/models/binary_metadata/metadata.json", "cannot read metadata"),
        Case("metadata.json with an infinite window", "edge.run",
             ["--model", "{c}/models/infinite_window/model.tflite", "--video", "{c}/videos/good.mp4"], 2,
             "{c}/models/infinite_window/metadata.json", "window.seconds inf"),
        Case("metadata.json with a NaN stride", "edge.run",
             ["--model", "{c}/models/nan_stride/model.tflite", "--video", "{c}/videos/good.mp4"], 2,
             "{c}/models/nan_stride/metadata.json", "stride_frames"),
        Case("infinite --window", "edge.run", edge + ["{c}/videos/good.mp4", "--window", "inf"], 2, "--window",
             "must be a finite number > 0"),
        Case("video without a face (blank frames)", "edge.run", edge + ["{c}/videos/blank.mp4"], 0, '"no_face"',
             "no face in frames 0-"),
        Case("video without a face, every window", "edge.run", edge + ["{c}/videos/blank.mp4", "--mode", "windows"],
             0, '"no_face"', "no face in frame 0"),
        Case("truncated .tflite to benchmark", "edge.bench", ["--model", "{c}/models/tflite/truncated.tflite",
                                                              "--video", "{c}/videos/good.mp4"], 2,
             "{c}/models/tflite/truncated.tflite", "not a loadable TFLite model"),
        Case("1-frame video to benchmark", "edge.bench", edge + ["{c}/videos/one_frame.mp4"], 2,
             "{c}/videos/one_frame.mp4", "1 frame(s) could be decoded"),
        Case("zero loops to benchmark", "edge.bench", edge + ["{c}/videos/good.mp4", "--loops", "0"], 2, "--loops",
             "must be a finite number > 0"),
    ]
    return cases


def _blank_clip(representation_from_frames, c):
    """The dynamic image of four copies of the corpus's blank photo."""
    import cv2

    from mer_keras.preprocess.representation import RepresentationConfig

    blank = cv2.imread(str(c / "images/blank.png"))
    return representation_from_frames([blank] * 4, 0, 1, 3, RepresentationConfig(), clip_id="blank-clip")


#: The one table of bad inputs: the corrupt-file cases above, then each group of ``kinds``.
CASES: list[Case] = _cases() + kinds.cases()


def build_all(root) -> Corpus:
    """The whole corpus: the corrupt files, then each group's files (``kinds``)."""
    corpus = build_corpus(root)
    kinds.build(corpus)
    return corpus


# -- running cases ------------------------------------------------------------------------------

#: The edge tools in a fresh interpreter where TensorFlow and the training code cannot load: each
#: [module, argv] of the JSON list on stdin through ``edge.<module>.main`` (as ``python -m`` calls it).
EDGE_BATCH = """
import contextlib, importlib, io, json, sys, traceback
for name in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization', 'mer_keras.train'):
    sys.modules[name] = None  # any import of these raises ImportError
results = []
for module, argv in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = importlib.import_module(module).main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
sys.__stdout__.write("@@RESULTS@@" + json.dumps(results))
"""


class Runner:
    """Runs cases against one corpus; CLI runs shared by several cases (same argv) run once, and
    all edge cases run in one subprocess."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self._cli: dict[tuple, Outcome] = {}
        self._edge: dict[tuple, Outcome] = {}

    def argv(self, case: Case) -> list[str]:
        return [a.replace("{c}", str(self.corpus.root)) for a in case.target]

    def run(self, case: Case) -> Outcome:
        """The outcome of ``case`` (cached for shared runs)."""
        if case.entry.startswith("edge."):
            if not self._edge:
                self._run_edge([c for c in CASES if c.entry.startswith("edge.")])
            outcome = self._edge[(case.entry, *self.argv(case))]
        elif case.entry == "cli":
            key = tuple(self.argv(case))
            if key not in self._cli:
                self._cli[key] = self._run_cli(list(key))
            outcome = self._cli[key]
        else:
            outcome = self._run_call(case)
        if self.corpus.marker.exists():
            outcome.code_ran = True
            self.corpus.marker.unlink()
        return outcome

    def _run_cli(self, argv: list[str]) -> Outcome:
        from typer.testing import CliRunner

        from mer_keras.cli.main import app

        res = CliRunner().invoke(app, argv)
        escaped = res.exception is not None and not isinstance(res.exception, SystemExit)
        output = res.output
        if escaped:
            output += "".join(traceback.format_exception(*res.exc_info))
        return Outcome(res.exit_code, output, traceback=escaped)

    def _run_call(self, case: Case) -> Outcome:
        try:
            case.target(self.corpus)
        except Exception as exc:  # noqa: BLE001  (the exception is the outcome)
            return Outcome(None, f"{type(exc).__name__}: {exc}", error=exc)
        return Outcome(None, "no error")

    def _run_edge(self, cases: list[Case]) -> None:
        jobs = [[c.entry, self.argv(c)] for c in cases]
        res = subprocess.run([sys.executable, "-c", EDGE_BATCH], input=json.dumps(jobs), cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
        if "@@RESULTS@@" not in res.stdout:
            raise RuntimeError(f"the edge batch failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
        for (module, argv), r in zip(jobs, json.loads(res.stdout.split("@@RESULTS@@", 1)[1])):
            text = r["stderr"] + r["stdout"]
            self._edge[(module, *argv)] = Outcome(r["code"], text,
                                                  traceback="Traceback (most recent call last)" in text)


def message_line(case: Case, outcome: Outcome, root: Path) -> str:
    """The line of the output that names the case's file or row (else the first non-empty line)."""
    where = case.where.replace("{c}", str(root))
    lines = [line.strip() for line in outcome.output.splitlines() if line.strip()]
    for line in lines:
        if where in line and case.reason in line:
            return line
    for line in lines:
        if where in line or line.startswith("error:"):
            return line
    return lines[0] if lines else ""


def problems(case: Case, outcome: Outcome, root: Path) -> list[str]:
    """What is wrong with ``outcome`` for ``case`` (empty: as expected)."""
    out = []
    where = case.where.replace("{c}", str(root))
    if outcome.traceback:
        out.append("a traceback escaped")
    if outcome.code_ran:
        out.append("code carried by a model file was executed")
    if isinstance(case.expect, type):
        if not isinstance(outcome.error, case.expect):
            out.append(f"expected {case.expect.__name__}, got {outcome.output[:300]}")
    elif case.expect == SKIPPED:
        if outcome.code != 0:
            out.append(f"expected the clip skipped and exit 0, got exit {outcome.code}")
        if "skipped" not in outcome.output:
            out.append("no list of skipped clips")
    elif outcome.code != case.expect:
        out.append(f"expected exit {case.expect}, got {outcome.code}")
    if not any(where in line and case.reason in line for line in outcome.output.splitlines()):
        out.append(f"no line names {where!r} with {case.reason!r}")
    if case.check is not None:
        out += case.check(root, outcome)
    if case.expect == 2 and not outcome.traceback:
        if case.entry == "cli" and "Usage:" not in outcome.output:
            errors = [line for line in outcome.output.splitlines() if line.startswith("error:")]
            if len(errors) != 1:
                out.append(f"{len(errors)} 'error:' lines instead of one")
        if case.entry.startswith("edge.") and "usage:" not in outcome.output:
            if len(outcome.output.strip().splitlines()) != 1:
                out.append("more than one line on stderr/stdout")
    return out


def slug(name: str) -> str:
    """``name`` as a pytest id: lower-case words joined by underscores."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# -- tests --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Runner:
    return Runner(build_all(tmp_path_factory.mktemp("corrupt")))


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.entry}-{slug(c.name)}") for c in CASES])
def test_bad_input(case, runner):
    outcome = runner.run(case)
    assert not problems(case, outcome, runner.corpus.root), (problems(case, outcome, runner.corpus.root),
                                                            outcome.output[-3000:])


def test_the_payloads_are_real(runner):
    """tf_keras's own loader runs the corpus's code-carrying files even with ``safe_mode=True``:
    the refusals above are what keeps them from running."""
    from mer_keras._keras import keras

    marker = runner.corpus.marker
    for name in ("h5_renamed.keras", "npz_pickle.keras"):
        with contextlib.suppress(Exception), contextlib.redirect_stderr(io.StringIO()):
            keras.models.load_model(runner.corpus / f"models/{name}", compile=False, safe_mode=True)
        assert marker.exists(), name
        marker.unlink()


def test_the_table_covers_every_entry_point():
    entries = {c.entry_point for c in CASES}
    assert {"mer-keras data prepare", "mer-keras export", "mer-keras explain", "mer-keras evaluate",
            "mer-keras train", "python -m edge.run", "mer_keras.load_model"} <= entries
    assert len({(c.entry, c.name) for c in CASES}) == len(CASES)


def test_the_corpus_is_grouped_by_kind_and_large_enough():
    groups = {c.kind for c in CASES}
    assert {"corrupt or missing files", *kinds.KINDS} <= groups
    assert len(CASES) >= 250, len(CASES)
