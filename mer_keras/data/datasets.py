"""One table of the datasets ``mer-keras train --data`` accepts, with their standard class sets.

Each entry loads records and applies the standard protocol's label set:

* ``casme2``: 5 classes (happiness, surprise, disgust, repression, others).
* ``samm``: 5 classes (anger, contempt, happiness, surprise, other).
* ``smic``: 3 classes (negative, positive, surprise), HS camera.
* ``casme``: 4 classes (disgust, repression, surprise, tense).
* ``casme_sq``: CAS(ME)^2 micro-expressions: negative, positive, surprise, others.
* ``casme3``: CAS(ME)^3 Part A, 7 emotions. ``mmew``: 6 classes (anger dropped).
* ``4dme``: positive, negative, surprise, repression, others.
* ``composite``: MEGC2019 SMIC-HS + CASME II + SAMM in 3 classes; ``root`` holds the three
  databases as ``CASME2/``, ``SAMM/`` and ``SMIC/``.
* ``manifest``: a CSV (``root`` is its path); classes are the labels found, sorted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mer_keras.data import casme, casme2, casme3, casme_sq, composite, fourdme, manifest, mmew, samm, smic
from mer_keras.data.database import LoadResult, describe
from mer_keras.data.records import Sample

DATASETS = ("synthetic", "casme2", "samm", "smic", "casme", "casme_sq", "casme3", "mmew", "4dme", "composite",
            "manifest")

#: database name -> loader module (each has ``load(root, strict=...)`` and ``CLASSES``).
SINGLE = {"casme2": casme2, "samm": samm, "smic": smic, "casme": casme, "casme_sq": casme_sq, "casme3": casme3,
          "mmew": mmew, "4dme": fourdme}


@dataclass
class Dataset:
    """Records ready for a protocol.

    Attributes:
        name: dataset name. samples: clip records, ``label`` set to a class of ``classes``.
        classes: class names in index order. images: precomputed-input records (manifest ``path`` rows).
        skipped: (where, why) of every record left out. counts: per-database counts (composite).
    """

    name: str
    samples: list[Sample]
    classes: list[str]
    images: list = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def _keep(result: LoadResult, classes) -> list[Sample]:
    return [s for s in result.samples if s.label in classes]


def load_cross(train: str, train_root, test: str, test_root, strict: bool = False,
               apex_policy: str = "midpoint") -> tuple[Dataset, Dataset]:
    """Training and test databases of the cross-database protocol, both in the composite's classes.

    Records are relabelled with :data:`mer_keras.data.composite.CROSS_LABEL_MAP` (emotions outside
    it are dropped); a manifest's labels are kept as written and must be those classes.

    Raises:
        ValueError: the same database on both sides, or an unknown name.
    """
    if (train, str(train_root)) == (test, str(test_root)):
        raise ValueError(f"cross-database protocol needs two different datasets, got {train} twice")
    out = []
    for name, root in ((train, train_root), (test, test_root)):
        if name not in SINGLE and name != "manifest":
            raise ValueError(f"cross-database protocol takes single databases or a manifest, not {name!r}")
        if name == "manifest":
            clips, _ = manifest.load(root, strict=strict, apex_policy=apex_policy)
            samples, skipped = [s for s in clips.samples if s.label in composite.CLASSES], clips.skipped
        else:
            r = SINGLE[name].load(root, strict=strict, apex_policy=apex_policy)
            samples, skipped = composite.relabel(r.samples, composite.CROSS_LABEL_MAP), r.skipped
        if not samples:
            raise ValueError(f"{name}: no sample in the classes {composite.CLASSES} under {root}")
        out.append(Dataset(name, samples, list(composite.CLASSES), skipped=skipped))
    return out[0], out[1]


def load_dataset(name: str, root=None, strict: bool = False, apex_policy: str = "midpoint",
                 cache_dir=None) -> Dataset:
    """Load a dataset of :data:`DATASETS` (except ``synthetic``, which the run builds itself).

    Raises:
        ValueError: unknown name, or no usable sample. FileNotFoundError: missing root or files.
    """
    if name in SINGLE:
        module = SINGLE[name]
        r = module.load(root, strict=strict, apex_policy=apex_policy)
        ds = Dataset(name, _keep(r, module.CLASSES), list(module.CLASSES), skipped=r.skipped)
    elif name == "composite":
        base = Path(root) if root is not None else None
        parts = [casme2.load(base / "CASME2" if base else None, strict=strict, apex_policy=apex_policy),
                 samm.load(base / "SAMM" if base else None, strict=strict, apex_policy=apex_policy),
                 smic.load(base / "SMIC" if base else None, strict=strict, apex_policy=apex_policy)]
        samples, counts = composite.composite([s for p in parts for s in p.samples])
        ds = Dataset(name, samples, list(composite.CLASSES), skipped=[x for p in parts for x in p.skipped],
                     counts=counts)
    elif name == "manifest":
        if root is None:
            raise FileNotFoundError("--data manifest needs --root pointing at the manifest CSV")
        clips, images = manifest.load(root, strict=strict, apex_policy=apex_policy, cache_dir=cache_dir)
        classes = sorted({s.label for s in clips.samples} | {i.label for i in images})
        ds = Dataset(name, clips.samples, classes, images=images, skipped=clips.skipped)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if not ds.samples and not ds.images:
        first = f"; first: {describe(*ds.skipped[0])}" if ds.skipped else ""
        raise ValueError(f"{name}: no usable sample under {root} ({len(ds.skipped)} skipped{first})")
    return ds
