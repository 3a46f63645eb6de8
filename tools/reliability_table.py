"""Run every bad input of ``tests/robustness/test_bad_inputs.py`` and print the outcomes as a Markdown table.

    python tools/reliability_table.py > reliability_bad_inputs.md
    python tools/reliability_table.py --keep /tmp/corpus      # keep the generated corpus there

The corrupted-file corpus is generated into a temporary folder (``tests/helpers/corrupt.py``), each case
of :data:`test_bad_inputs.CASES` is run against its entry point exactly as the test does, and one
row is printed per case: the bad input, the entry point, the outcome (exit code, "skipped" for a
bad clip left out without ``--strict``, or the exception a library call raised) and the first
line of the message that names the file or row, with the corpus path shortened to ``<corpus>``.
A last column says whether the outcome is the expected one (or what is wrong); the exit status is
1 if an outcome is unexpected.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: the corpus and its cases
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GLOG_minloglevel", "2")


def outcome_text(case, outcome) -> str:
    """Exit code, "skipped (exit 0)", or the exception type, with a traceback flagged."""
    from tests.robustness.test_bad_inputs import SKIPPED

    if outcome.traceback:
        return f"**traceback** (exit {outcome.code})"
    if outcome.code is None:
        return f"`{type(outcome.error).__name__}`" if outcome.error is not None else "no error"
    if case.expect == SKIPPED and outcome.code == 0:
        return "skipped, exit 0"
    return f"exit {outcome.code}"


def cell(text: str, root: Path, limit: int = 220) -> str:
    """``text`` for a Markdown cell: corpus paths shortened, pipes escaped, cut at ``limit``."""
    text = text.replace(str(root), "<corpus>").replace("|", "\\|").replace("`", "'")
    if text.startswith("error: "):
        text = text[len("error: "):]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", help="generate the corpus in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args(argv)

    import mer_keras  # noqa: F401  (selects tf_keras before TensorFlow loads)
    from tests.robustness.test_bad_inputs import CASES, Runner, build_all, message_line, problems

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp) / "corpus"
        t0 = time.perf_counter()
        runner = Runner(build_all(root))
        rows, failures = [], 0
        for case in CASES:
            outcome = runner.run(case)
            wrong = problems(case, outcome, root)
            failures += bool(wrong)
            verdict = "yes" if not wrong else "NO: " + cell("; ".join(wrong), root, 140)
            rows.append(f"| {case.kind} | {case.name} | `{case.entry_point}` | {outcome_text(case, outcome)} | "
                        f"{cell(message_line(case, outcome, root), root)} | {verdict} |")
        seconds = time.perf_counter() - t0
    print(f"Bad inputs tried: {len(CASES)}; outcome as expected: {len(CASES) - failures}; unexpected: {failures}. "
          f"Generated and run in {seconds:.0f} s by "
          f"`python tools/reliability_table.py`.\n")
    print("| kind | bad input | entry point | outcome | message (first line naming the file or row) | as expected |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
