"""Nested leave-subjects-out selection of training recipes: no test subject ever reaches it.

Published MER code picks epochs, learning rates and architectures by looking at the test subjects
(HTNet's script keeps each test subject's best epoch; Varanka et al., arXiv 2211.11425, measure
what that adds). ``mer-keras tune`` chooses them on training subjects only:

1. The subjects are split into G groups of near-equal clip counts (scikit-learn ``GroupKFold``
   over the clips' subjects; deterministic): :func:`subject_groups`.
2. For outer group ``a``, the inner loop sees only the subjects of the other G - 1 groups. Each
   recipe of the declared search space is trained G - 1 times, leaving one of those groups out in
   turn and predicting it (:func:`inner_folds`), and it is scored at every epoch count of the
   space from one fit to the largest count (predictions after each:
   :class:`~mer_keras.train.callbacks.CheckpointPredictions`). The inner score of (recipe,
   epochs) is the UF1 pooled over the predictions of all those subjects (:func:`score_recipes`).
3. Every LOSO test subject of group ``a`` is then scored by a model trained on every other
   subject with group ``a``'s best (recipe, epochs) (:func:`choose`). The test subject is in
   neither the training nor the validation data of any fit of its own selection; its group
   peers are left out of the inner loop too, which lets one selection serve the whole group
   (G (G - 1) inner fits per recipe instead of one inner loop per subject) at the price of
   selecting on (G - 2) / (G - 1) of the subjects a per-subject loop would use.
4. The final model's recipe comes from the same inner loop over all G groups (``outer=None``).

Everything here is TensorFlow-free except :func:`score_recipes`, which trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from mer_keras.data.protocols import Fold
from mer_keras.errors import OptionError
from mer_keras.train.config import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_SHIFT

#: Training options a search space may vary, and their types. ``epochs`` is scored from
#: checkpoints of one fit; every other combination is its own fit (a *recipe*).
SEARCHABLE: dict[str, type] = {"lr": float, "epochs": int, "batch_size": int, "augment": bool, "shift": int,
                               "class_weight": bool, "weight_decay": float, "ema": float,
                               "label_smoothing": float, "mixup": bool, "cutmix": bool}
_TRUE, _FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


def _value(key: str, text: str):
    kind = SEARCHABLE[key]
    t = text.strip().lower()
    if kind is bool:
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        raise ValueError(text)
    number = float(t)  # ValueError for text; "nan", "inf" and "1e400" parse, and are refused below
    if kind is int:
        if not (math.isfinite(number) and number.is_integer()):
            raise ValueError(text)
        value = int(number)
    else:
        value = number
    problem = space_value_problem(key, value)
    if problem:
        raise ValueError(problem)
    return value


#: Largest value of each searchable number (the options' own bounds).
_SPACE_MAX = {"epochs": MAX_EPOCHS, "batch_size": MAX_BATCH_SIZE, "shift": MAX_SHIFT, "weight_decay": 1e3}


def space_value_problem(key: str, value) -> str | None:
    """What is wrong with one value of a search space's ``key`` (None: nothing): the key's type,
    finite, > 0 for lr, epochs and batch_size, >= 0 for shift, within the options' bounds."""
    kind = SEARCHABLE[key]
    if kind is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        return f"expected a {'whole number' if kind is int else 'number'}"
    finite = isinstance(value, int) or math.isfinite(value)  # a huge int is finite (np.isfinite refuses it)
    if not finite or value < 0 or (key in ("lr", "epochs", "batch_size") and value == 0):
        return "expected a finite number " + ("above 0" if key in ("lr", "epochs", "batch_size") else "of at least 0")
    if key in _SPACE_MAX and value > _SPACE_MAX[key]:
        return f"expected at most {_SPACE_MAX[key]}"
    if key == "ema" and value >= 1:
        return "expected 0 (off) or a momentum below 1"
    if key == "label_smoothing" and value >= 1:
        return "expected a number from 0 to below 1"
    return None


def check_space(space) -> str | None:
    """What is wrong with a search space {key: [values]} (None: nothing): for a space given from
    Python or read from a tune run's config.json (``--space`` text is checked by :func:`parse_space`)."""
    if not isinstance(space, dict):
        return "expected KEY=V1,V2,... items (a mapping of key to values)"
    for key, values in space.items():
        if key not in SEARCHABLE:
            return f"{key!r} cannot be searched; searchable: {', '.join(SEARCHABLE)}"
        if not isinstance(values, (list, tuple)) or not values:
            return f"{key}: expected a non-empty list of values, got {values!r}"
        for v in values:
            problem = space_value_problem(key, v)
            if problem:
                return f"{key} value {v!r}: {problem}"
    return None


def parse_space(items: Sequence[str]) -> dict[str, list]:
    """A search space from ``KEY=V1,V2,...`` items (command line ``--space``, repeatable).

    Example: ``["lr=5e-4,1e-3", "epochs=40,80,120", "shift=0,2"]`` ->
    ``{"lr": [0.0005, 0.001], "epochs": [40, 80, 120], "shift": [0, 2]}``. Booleans take
    true/false, on/off, yes/no, 1/0. Values keep their given order, and on a tie of inner scores
    the earlier recipe wins; epoch counts are scored in ascending order (the fewer win a tie).

    Raises:
        OptionError: an unknown key (the searchable ones are named), a key given twice, an empty
            list, a repeated value, or a value of the wrong type or out of range.
    """
    space: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values.strip():
            raise OptionError(f"--space {item!r}: expected KEY=V1,V2,... e.g. lr=5e-4,1e-3")
        if key not in SEARCHABLE:
            raise OptionError(f"--space {item!r}: {key!r} cannot be searched; searchable: {', '.join(SEARCHABLE)}")
        if key in space:
            raise OptionError(f"--space: {key} given twice")
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(_value(key, v))
            except ValueError as exc:
                why = str(exc) if str(exc).startswith("expected") else \
                    {int: "expected a whole number", float: "expected a number",
                     bool: "expected true/false, on/off, yes/no or 1/0"}[SEARCHABLE[key]]
                raise OptionError(f"--space {item!r}: {v.strip()!r} is not a valid {key} ({why})") from None
        if len(set(parsed)) != len(parsed):
            raise OptionError(f"--space {item!r}: a value is repeated")
        space[key] = parsed
    return space


def recipes(space: dict[str, list]) -> list[dict]:
    """Every combination of the space's values other than ``epochs``, in declared order (the
    first key varies slowest): ``[{}]`` when only epochs vary."""
    from itertools import product

    keys = [k for k in space if k != "epochs"]
    return [dict(zip(keys, combo)) for combo in product(*(space[k] for k in keys))]


def check_group_count(n_groups: int, n_subjects: int) -> None:
    """Refuse ``n_groups`` subject groups for ``n_subjects`` subjects unless 3 <= n_groups <= n_subjects.

    Raises:
        OptionError: naming ``--groups`` and the range (an inner loop needs two groups besides the outer one).
    """
    if n_groups < 3 or n_groups > n_subjects:
        raise OptionError(f"--groups {n_groups}: expected 3..{n_subjects} (the number of subjects); the inner loop "
                          "of a group needs two other groups")


def subject_groups(subjects: Sequence[str], n_groups: int) -> dict[str, int]:
    """Split subjects into ``n_groups`` groups of near-equal clip counts (``sklearn.model_selection.GroupKFold``).

    Args:
        subjects: (N,) subject of each clip.
    Returns:
        {subject: group index in 0..n_groups-1}.
    Raises:
        OptionError: fewer than 3 groups (an inner loop needs two groups besides the outer one) or
            more groups than subjects.
    """
    from sklearn.model_selection import GroupKFold

    names = sorted(set(subjects))
    check_group_count(n_groups, len(names))
    out: dict[str, int] = {}
    for g, (_, held) in enumerate(GroupKFold(n_splits=n_groups).split(np.zeros(len(subjects)), groups=subjects)):
        for i in held:
            out[subjects[i]] = g
    return out


def inner_folds(subjects: Sequence[str], group_of: dict[str, int], outer: int | None) -> list[Fold]:
    """The inner leave-one-group-out folds of outer group ``outer`` (None: of the final model).

    Fold ``outer<a>/val<b>`` trains on the clips of every group except ``a`` and ``b`` and holds
    out group ``b``; the clips of group ``a`` are in none of them.

    Args:
        subjects: (N,) subject of each clip. group_of: from :func:`subject_groups`.
    Returns:
        G - 1 folds (G with ``outer=None``), named ``outer<a>/val<b>`` (``final/val<b>``).
    """
    g = np.array([group_of[s] for s in subjects])
    tag = "final" if outer is None else f"outer{outer}"
    folds = []
    for b in sorted(set(group_of.values())):
        if b == outer:
            continue
        train = np.flatnonzero((g != b) & (g != (-1 if outer is None else outer)))
        folds.append(Fold(f"{tag}/val{b}", train, np.flatnonzero(g == b)))
    return folds


def score_recipes(x: np.ndarray, y: np.ndarray, subjects: Sequence[str], classes: Sequence[str], base_cfg,
                  space: dict[str, list], group_of: dict[str, int], outers: Sequence[int | None],
                  strategy=None, fold_callbacks: Callable | None = None,
                  on_recipe_end: Callable[[int, dict, list[dict]], None] | None = None,
                  done: dict[int, list[dict]] | None = None,
                  aus: Sequence[Sequence[str]] | None = None) -> dict[int, list[dict]]:
    """Inner-loop scores of every (recipe, epochs) for each outer group in ``outers``.

    Each recipe trains once over the inner folds of all ``outers`` together (so small models
    train them several at once), to the largest epoch count, and is scored after each count.

    Args:
        x: (N, ...) float32 inputs; y: (N,) int labels; subjects: (N,) subject per clip.
        base_cfg: the :class:`~mer_keras.train.config.TrainConfig` the recipes modify.
        space: from :func:`parse_space` (``epochs`` defaults to ``[base_cfg.epochs]``).
        outers: outer groups to score (``None``: the final model's selection over all groups).
        on_recipe_end: called with (recipe index, recipe, its score rows) as each recipe ends (to
            save them; a killed job does not redo it). done: {recipe index: rows} already scored.
        aus: per clip its AUs (models with AU heads train with them, as the outer folds do), or None.
    Returns:
        {recipe index: rows}; a row is {"outer": a or None, "recipe": dict, "epochs": int,
        "uf1", "uar", "accuracy": pooled over the validation clips of that outer group's inner
        folds, "n": clips}.
    """
    from mer_keras.metrics import compute_metrics
    from mer_keras.train.folds import run_folds

    epochs = sorted(space.get("epochs") or [base_cfg.epochs])
    scores = dict(done or {})
    for r, recipe in enumerate(recipes(space)):
        if r in scores:
            continue
        cfg = replace(base_cfg, **recipe, epochs=max(epochs))
        per_outer = {a: inner_folds(subjects, group_of, a) for a in outers}
        folds = [f for fs in per_outer.values() for f in fs]
        res = run_folds(x, y, folds, classes, cfg, strategy, fold_callbacks=fold_callbacks, checkpoints=epochs, aus=aus)
        rows = []
        for a, fs in per_outer.items():
            idx = np.concatenate([f.test for f in fs])
            for e in epochs:
                p = np.concatenate([res["checkpoints"][f.name][e] for f in fs])
                m = compute_metrics(y[idx], p.argmax(1), classes)
                rows.append({"outer": a, "recipe": recipe, "epochs": e, "uf1": m["uf1"], "uar": m["uar"],
                             "accuracy": m["accuracy"], "n": int(len(idx))})
        scores[r] = rows
        if on_recipe_end:
            on_recipe_end(r, recipe, rows)
    return scores


def choose(rows: Sequence[dict]) -> dict:
    """The best row of one outer group: highest inner UF1, then UAR; on a tie the earlier recipe
    and the fewer epochs (the cheaper, in declared order)."""
    if not rows:
        raise ValueError("no inner scores to choose from")
    order = {id(r): i for i, r in enumerate(rows)}
    return max(rows, key=lambda r: (round(r["uf1"], 12), round(r["uar"], 12), -order[id(r)]))
