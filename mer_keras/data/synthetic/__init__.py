"""Embedded default data: synthetic micro-expressions rendered on real face photographs.

No micro-expression corpus may be downloaded, so the default run uses clips synthesised from
face photographs the installed packages ship: matplotlib's ``grace_hopper.jpg`` and
scikit-image's ``astronaut.png`` (plus any images passed with ``faces_dir``).

How a clip is made (see docs/DATASETS.md for the parameters and the limits):

1. Pseudo-subjects. Each photo is turned into several identities by a landmark-driven face-shape
   morph (jaw width, face length, eye spacing, brow height, nose length, mouth width), a head
   roll, a scale, a skin-tone shift (CIELAB a*, b*, L*), a gamma and, for half of them, a mirror
   image. The mediapipe face mesh is then run on the new identity image.
2. Facial actions. Each FACS action unit (AU) moves a set of mediapipe landmarks along a
   face-relative direction (in inter-ocular-distance units, table ``warping.AU_MOTION``); the
   motion spreads to neighbouring landmarks with a Gaussian fall-off and is turned into a dense
   field by piecewise-affine interpolation over the Delaunay triangulation of the landmarks
   (scipy's LinearNDInterpolator) plus zero-motion image-border points. Frames are rendered by
   ``cv2.remap`` of the photo.
3. Classes (MEGC2019 composite; their AUs are :data:`mer_keras.facs.AU_COMBINATIONS`): negative
   (AU4+AU7, AU9+AU10, AU14, AU15+AU17, AU4, AU4+AU15), positive (AU6+AU12, AU12), surprise
   (AU1+AU2, AU1+AU2+AU5, AU1+AU2+AU26). Drawn with probabilities 0.45 / 0.30 / 0.25,
   imbalanced like the real composite.
4. Temporal profile: smooth rise from onset to apex and fall to offset; onset-to-offset duration
   0.18-0.45 s at 100 fps; apex at 30-60 % of it; a few neutral frames before and after.
5. Low intensity: apex displacement of the strongest landmark 0.035-0.08 inter-ocular distances,
   about 1.6-3.7 px on the 128 px aligned face; each AU of a combination is scaled by 0.6-1.0.
6. Resting face: a static random signed mix of all AUs on every frame of a clip, of the same
   size as the expression, so that a single frame is ambiguous (see ``render_clip``).
7. Nuisances present in every class: blinks (AU45, 35 % of clips, larger than the expressions),
   a weak distractor AU from any class (25 % of clips), sub-pixel head jitter and drift,
   illumination flicker and Gaussian sensor noise; JPEG storage (quality 95) as in CASME II.

The output is written like a real database: ``<root>/sub01/clip001/img1.jpg ...`` and one coding
sheet ``coding.csv`` (Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units,
Estimated Emotion, ...). It is deterministic for a seed and cached (generated once, written to
a temporary folder and renamed, so an interrupted generation is never trusted).

Modules, in the order a clip is made:

* ``config``: :class:`SyntheticConfig`, :data:`CLASSES`, :data:`CLASS_PROBABILITIES`,
  :data:`GENERATOR_VERSION`.
* ``mesh``: the mediapipe face-mesh landmark groups and the face-relative frame.
* ``warping``: :data:`AU_MOTION`, :func:`landmark_displacements`, :func:`dense_field`, :func:`warp`.
* ``faces``: :func:`bundled_face_photos`, :func:`load_face_photos`, :class:`PseudoSubject`,
  :func:`make_subjects`.
* ``render``: :func:`render_clip` (one clip).
* ``dataset``: :func:`dataset_dir`, :func:`generate`, :func:`load_samples`, :func:`synthetic_dataset`.

Every name above is importable from this package.
"""

import importlib

#: name -> submodule that defines it; imported on first use (PEP 562), so that reading the
#: configuration (``mer_keras.data.synthetic.config``) does not load OpenCV, pandas or mediapipe.
_WHERE = {
    **dict.fromkeys(("CLASS_PROBABILITIES", "CLASSES", "GENERATOR_VERSION", "SyntheticConfig"), "config"),
    **dict.fromkeys(("dataset_dir", "generate", "load_samples", "synthetic_dataset"), "dataset"),
    **dict.fromkeys(("PseudoSubject", "bundled_face_photos", "load_face_photos", "make_subjects"), "faces"),
    "render_clip": "render",
    **dict.fromkeys(("AU_MOTION", "dense_field", "landmark_displacements", "warp"), "warping"),
}


def __getattr__(name: str):
    if name == "AU_COMBINATIONS":
        from mer_keras.facs import AU_COMBINATIONS

        return AU_COMBINATIONS
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AU_COMBINATIONS", "AU_MOTION", "CLASSES", "CLASS_PROBABILITIES", "GENERATOR_VERSION", "PseudoSubject",
           "SyntheticConfig", "bundled_face_photos", "dataset_dir", "dense_field", "generate", "landmark_displacements",
           "load_face_photos", "load_samples", "make_subjects", "render_clip", "synthetic_dataset", "warp"]
