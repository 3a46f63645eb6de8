"""Spotted intervals and how MEGC scores them: IoU matching, precision, recall, F1, a random baseline.

An interval is a closed range of 0-based frame indices ``[onset, offset]`` (the frames of a
video, first = 0), with its apex, its type (``micro`` or ``macro``) and, once recognised, a class.

Scoring follows the MEGC spotting challenges (MEGC2020-2022, the long videos of CAS(ME)^2 and
SAMM): a spotted interval W is a true positive for a ground-truth interval G when

    IoU = |W ∩ G| / |W ∪ G| >= 0.5        (frame counts; both ends included)

each ground-truth interval is matched at most once and each spotted interval at most once;
spotted micro-expressions are matched against ground-truth micro-expressions and macro against
macro; precision = TP / spotted, recall = TP / ground truth, F1 = 2PR / (P + R), summed over the
videos of a set (not averaged per video), per type and overall (TP, spotted and ground truth of
both types added).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Expression types of MEGC spotting.
TYPES = ("micro", "macro")
#: IoU at or above which a spotted interval is a true positive (MEGC).
IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class Interval:
    """A spotted or annotated expression: frames ``onset..offset`` (0-based, both included).

    Attributes:
        onset, apex, offset: 0-based frame indices, onset <= apex <= offset.
        type: ``micro`` or ``macro``.
        score: the spotter's peak height over its threshold (> 1 means above it); 0 for ground truth.
        label: class name once recognised (or the annotated emotion), else "".
    Raises:
        ValueError: frames out of order, or an unknown type.
    """

    onset: int
    apex: int
    offset: int
    type: str = "micro"
    score: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.onset <= self.apex <= self.offset:
            raise ValueError(f"interval onset {self.onset}, apex {self.apex}, offset {self.offset} is not "
                             f"0 <= onset <= apex <= offset")
        if self.type not in TYPES:
            raise ValueError(f"interval type {self.type!r} is not one of {TYPES}")

    @property
    def frames(self) -> int:
        """Number of frames, both ends included."""
        return self.offset - self.onset + 1

    def to_dict(self) -> dict:
        return asdict(self)


def iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two intervals, in frames (both ends included); 0..1."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    return inter / (a.frames + b.frames - inter)


def match(spotted: Sequence[Interval], truth: Sequence[Interval],
          threshold: float = IOU_THRESHOLD) -> list[tuple[int, int, float]]:
    """One-to-one matches with IoU >= ``threshold``, best IoU first (greedy).

    Returns:
        [(index into spotted, index into truth, IoU)], at most one per spotted and per true interval.
    """
    pairs = sorted(((iou(s, t), i, j) for i, s in enumerate(spotted) for j, t in enumerate(truth)),
                   key=lambda p: (-p[0], p[1], p[2]))
    used_s, used_t, out = set(), set(), []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_s and j not in used_t:
            used_s.add(i)
            used_t.add(j)
            out.append((i, j, value))
    return out


@dataclass
class Counts:
    """True positives, spotted intervals and ground-truth intervals of one type (or all)."""

    tp: int = 0
    spotted: int = 0
    truth: int = 0

    def add(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.spotted + other.spotted, self.truth + other.truth)

    def scores(self) -> dict:
        """{"tp", "fp", "fn", "spotted", "truth", "precision", "recall", "f1"}; a ratio with a zero
        denominator is 0 (no interval spotted: precision 0; nothing to find: recall 0)."""
        p = self.tp / self.spotted if self.spotted else 0.0
        r = self.tp / self.truth if self.truth else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {"tp": self.tp, "fp": self.spotted - self.tp, "fn": self.truth - self.tp, "spotted": self.spotted,
                "truth": self.truth, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}


def count_video(spotted: Sequence[Interval], truth: Sequence[Interval],
                threshold: float = IOU_THRESHOLD) -> dict[str, tuple[Counts, list[tuple[int, int, float]]]]:
    """Per type: the counts of one video and its matches (indices into ``spotted`` and ``truth``)."""
    out = {}
    for kind in TYPES:
        s_idx = [i for i, s in enumerate(spotted) if s.type == kind]
        t_idx = [j for j, t in enumerate(truth) if t.type == kind]
        pairs = match([spotted[i] for i in s_idx], [truth[j] for j in t_idx], threshold)
        out[kind] = (Counts(len(pairs), len(s_idx), len(t_idx)), [(s_idx[a], t_idx[b], v) for a, b, v in pairs])
    return out


def score_videos(videos: Iterable[tuple[Sequence[Interval], Sequence[Interval]]],
                 threshold: float = IOU_THRESHOLD) -> dict:
    """MEGC spotting scores of a set of videos: {"overall", "micro", "macro"} -> :meth:`Counts.scores`.

    Args:
        videos: (spotted, truth) interval lists, one pair per video.
    """
    totals = {kind: Counts() for kind in TYPES}
    for spotted, truth in videos:
        for kind, (counts, _) in count_video(spotted, truth, threshold).items():
            totals[kind] = totals[kind].add(counts)
    overall = totals["micro"].add(totals["macro"])
    return {"overall": overall.scores(), **{k: totals[k].scores() for k in TYPES}}


def random_intervals(spotted: Sequence[Interval], frames: int, rng: np.random.Generator) -> list[Interval]:
    """The same number of intervals, each of the same length and type, at uniformly random places.

    The chance level of a spotter that finds nothing but knows how many intervals to place and
    how long they are.
    """
    out = []
    for s in spotted:
        length = min(s.frames, frames)
        onset = int(rng.integers(0, frames - length + 1))
        out.append(Interval(onset, onset + (s.apex - s.onset) * length // s.frames, onset + length - 1, s.type))
    return out


def random_baseline(videos: Sequence[tuple[Sequence[Interval], Sequence[Interval], int]], draws: int = 200,
                    seed: int = 0, threshold: float = IOU_THRESHOLD) -> dict:
    """F1 of :func:`random_intervals` in place of each video's spotted intervals, over ``draws`` draws.

    Args:
        videos: (spotted, truth, number of frames) per video.
    Returns:
        {"draws", "seed", "overall" | "micro" | "macro": {"f1_mean", "f1_p95"}}.
    """
    rng = np.random.default_rng(seed)
    f1 = {k: [] for k in ("overall", *TYPES)}
    for _ in range(draws):
        result = score_videos([(random_intervals(s, n, rng), t) for s, t, n in videos], threshold)
        for k in f1:
            f1[k].append(result[k]["f1"])
    return {"draws": draws, "seed": seed, **{k: {"f1_mean": round(float(np.mean(v)), 4),
                                                 "f1_p95": round(float(np.percentile(v, 95)), 4)}
                                             for k, v in f1.items()}}


def spot_then_recognise(micro: dict, recognition_uf1: float | None, recognition_uar: float | None = None,
                        recognised: int = 0) -> dict:
    """The spot-then-recognise score of MEGC 2023-2025 (STR task): STRS = spotting F1 x recognition F1.

    Spotting F1 is the micro-expression F1 at IoU >= 0.5 (:func:`score_videos`' ``micro`` entry);
    recognition F1 is the macro F1 over classes (UF1) of the true positives: each spotted interval
    that matches a true micro-expression, its class as predicted from the spotted interval against
    the coders' class. The MEGC2025 baseline table (Fan et al., ACM MM 2025, arXiv 2506.15298)
    reports STRS as this product (SAMM: 0.0278 x 0.2222 = 0.0062).

    Args:
        micro: {"tp", "fp", "fn", "precision", "recall", "f1"} of the micro-expressions.
        recognition_uf1, recognition_uar: over the true positives, or None when there is none.
        recognised: how many true positives were classified.
    Returns:
        {"spotting_f1", "recognition_uf1", "recognition_uar", "recognised", "strs"}; with no true
        positive the recognition and the STRS are 0 (nothing was spotted and recognised).
    """
    uf1 = float(recognition_uf1) if recognition_uf1 is not None else 0.0
    return {"spotting_f1": float(micro["f1"]), "recognition_uf1": uf1,
            "recognition_uar": float(recognition_uar) if recognition_uar is not None else 0.0,
            "recognised": int(recognised), "strs": round(float(micro["f1"]) * uf1, 4)}
