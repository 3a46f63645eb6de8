"""Steps shared by ``spot`` and ``predict --spot``: the spotter configured, a video spotted, its intervals
turned into model inputs and recognised.
"""

from __future__ import annotations

import time

from mer_keras.errors import OptionError


def spot_config(**values):
    """The :class:`~mer_keras.runtime.spotting.SpotConfig` of the options given (None: its default).

    Raises:
        OptionError: a value out of range, ``--min-snr`` with the learned method, ``--learned-model``
            without it, or a second stage that cannot be read (named).
    """
    from mer_keras.runtime.spotting import SpotConfig

    given = {k: v for k, v in values.items() if v is not None}
    if given.get("min_snr") is not None and given.get("method") == "learned":
        raise OptionError("--min-snr is a rule of --method analytic; the learned second stage keeps candidates by "
                          "its own threshold")
    if given.get("learned_model") is not None and given.get("method") != "learned":
        raise OptionError("--learned-model needs --method learned")
    try:
        return SpotConfig(**given)
    except ValueError as exc:
        raise OptionError(str(exc)) from None


def spot_video(video, cfg) -> tuple[list, dict]:
    """Spot one :class:`~mer_keras.data.spotting.SpotVideo`: (intervals, {"frames", "seconds", "no_face"})."""
    import numpy as np

    from mer_keras.data.pipeline import read_frame
    from mer_keras.runtime.spotting import Spotter

    spotter = Spotter(video.fps, cfg)
    t0 = time.perf_counter()
    found = []
    for path in video.frames:
        found += spotter.push(read_frame(path))
    found += spotter.finish()
    seconds = time.perf_counter() - t0
    no_face = int(np.isnan(np.asarray(spotter.signals["micro"])).sum()) if video.frames else 0
    return sorted(found, key=lambda i: i.onset), {"frames": len(video.frames), "seconds": round(seconds, 2),
                                                  "no_face_or_edge": no_face}


def interval_inputs(meta: dict, video, intervals):
    """The model inputs of ``intervals`` of ``video``: each interval's frames onset..offset turned
    into the representation of ``meta["preprocessing"]``, as in training.

    Returns:
        (N, ...) float32 array, or None for no interval.
    """
    import numpy as np

    from mer_keras.data.pipeline import read_frame
    from mer_keras.preprocess.representation import RepresentationConfig, representation_from_frames

    rep = RepresentationConfig.from_dict(dict(meta["preprocessing"]))
    x = []
    for it in intervals:
        frames = [read_frame(p) for p in video.frames[it.onset:it.offset + 1]]
        x.append(representation_from_frames(frames, 0, it.apex - it.onset, it.offset - it.onset, rep,
                                            clip_id=f"{video.name} frames {it.onset + 1}-{it.offset + 1}"))
    return np.stack(x) if x else None


def recognise(predict, meta: dict, video, intervals):
    """(N, K) class probabilities of ``intervals`` of ``video`` (onset..offset frames, apex as given).

    Args:
        predict: the model's ``(N, ...) float32 -> (N, K)`` probabilities (an opened model's
            ``predict``, :func:`mer_keras.jobs.trained.open_model`).
        meta: the model's metadata.json (``classes``, ``preprocessing``).
    """
    import numpy as np

    x = interval_inputs(meta, video, intervals)
    if x is None:
        return np.zeros((0, len(meta["classes"])), np.float32)
    return predict(x)
