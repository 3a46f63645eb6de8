"""FACS action units: the AU vocabulary of the AU heads and the emotion <-> AU tables.

Shared by the models (the size and order of an AU head's outputs), the training targets
(multi-hot AU vectors) and the synthetic generator (which AUs a clip of each class shows). It
holds names and relations only: how an AU moves the face mesh when it is rendered
(:data:`mer_keras.data.synthetic.warping.AU_MOTION`, mediapipe landmark indices) belongs to the
renderer, not here.

AUs are named ``AU<n>`` with the numbering of the Facial Action Coding System:
AU1 inner brow raiser, AU2 outer brow raiser, AU4 brow lowerer, AU5 upper lid raiser, AU6 cheek
raiser, AU7 lid tightener, AU9 nose wrinkler, AU10 upper lip raiser, AU12 lip corner puller,
AU14 dimpler, AU15 lip corner depressor, AU17 chin raiser, AU20 lip stretcher, AU23 lip
tightener, AU24 lip pressor, AU25 lips part, AU26 jaw drop, AU45 blink.

Sources:
    P. Ekman and W. V. Friesen, "Facial Action Coding System: A Technique for the Measurement of
    Facial Movement", Consulting Psychologists Press, 1978; P. Ekman, W. V. Friesen and J. C.
    Hager, "Facial Action Coding System: The Manual", Research Nexus, 2002 (AU numbering and
    names).
    W. V. Friesen and P. Ekman, "EMFACS-7: Emotional Facial Action Coding System", unpublished
    manual, University of California, 1983 (emotion prototypes as AU combinations).
    W.-J. Yan, X. Li, S.-J. Wang, G. Zhao, Y.-J. Liu, Y.-H. Chen and X. Fu, "CASME II: An
    Improved Spontaneous Micro-Expression Database and the Baseline Evaluation", PLoS ONE 9(1),
    2014 (AUs of its repression class).
    J. See, M. H. Yap, J. Li, X. Hong and S.-J. Wang, "MEGC 2019 - The Second Facial
    Micro-Expressions Grand Challenge", IEEE FG 2019 (the three composite classes negative,
    positive, surprise).

:data:`AU_COMBINATIONS` is EMFACS-style, not the EMFACS table: each class of the composite gets a
few partial prototypes made of the AUs the generator can render (negative pools parts of anger,
disgust, contempt and sadness; positive is happiness; surprise is surprise). Contempt's AU14 is
unilateral in EMFACS; the generator renders it on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The AUs predicted by AU heads (FACS numbering): the upper- and lower-face AUs that CASME II, SAMM
#: and CAS(ME)^3 code on more than a handful of clips. SMIC has no AU coding (its clips are masked).
AU_VOCABULARY = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17",
                 "AU20", "AU23", "AU24", "AU25", "AU26")

#: Emotion class (MEGC2019 composite) -> the AU combinations a synthetic clip of that class shows,
#: one drawn uniformly per clip: negative = AU4+AU7 (part of anger), AU9+AU10 (disgust), AU14
#: (contempt), AU15+AU17 (sadness), AU4, AU4+AU15; positive = AU6+AU12 (felt smile), AU12;
#: surprise = AU1+AU2, AU1+AU2+AU5, AU1+AU2+AU26.
AU_COMBINATIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "negative": (("AU4", "AU7"), ("AU9", "AU10"), ("AU14",), ("AU15", "AU17"), ("AU4",), ("AU4", "AU15")),
    "positive": (("AU6", "AU12"), ("AU12",)),
    "surprise": (("AU1", "AU2"), ("AU1", "AU2", "AU5"), ("AU1", "AU2", "AU26")),
}


#: EMFACS prototypes of the basic emotions, restricted to :data:`AU_VOCABULARY` (Friesen and
#: Ekman 1983, as usually tabulated): happiness 6+12, sadness 1+4+15, surprise 1+2+5+26, fear
#: 1+2+4+5+7+20+26, anger 4+5+7+23, disgust 9+15 (+16, outside the vocabulary), contempt 14
#: (unilateral, with 12). CASME II's repression class: 14, 15, 17 (Yan et al. 2014).
EMOTION_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "happiness": ("AU6", "AU12"),
    "sadness": ("AU1", "AU4", "AU15"),
    "surprise": ("AU1", "AU2", "AU5", "AU26"),
    "fear": ("AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"),
    "anger": ("AU4", "AU5", "AU7", "AU23"),
    "disgust": ("AU9", "AU15"),
    "contempt": ("AU14",),
    "repression": ("AU14", "AU15", "AU17"),
}

#: Class names -> the prototypes they pool (each weighs the same). The MEGC2019 composite classes:
#: negative pools the five negative basic emotions, positive is happiness. Names of the databases'
#: own classes map to themselves; a class not listed (``others``, ``tense``) has no prior.
CLASS_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "negative": ("anger", "disgust", "fear", "sadness", "contempt"),
    "positive": ("happiness",),
    "happy": ("happiness",),
    "sad": ("sadness",),
    "angry": ("anger",),
    "surprised": ("surprise",),
    **{name: (name,) for name in EMOTION_PROTOTYPES},
}

#: Pseudo-count of the table prior when it is blended with the AU codes of a class's training
#: clips (:func:`emotion_au_prior`): with 4, a class with 4 coded clips is half table, half data.
PRIOR_STRENGTH = 4.0


def table_au_prior(class_name: str, vocabulary: Sequence[str] = AU_VOCABULARY) -> np.ndarray | None:
    """P(AU | emotion) from the prototype table: the share of the class's prototypes holding each AU.

    Args:
        class_name: an emotion or composite class, any case (``"Negative"``, ``"happiness"``).
    Returns:
        (A,) float32 in [0, 1] over ``vocabulary``, or ``None`` for a class the table does not know.
    """
    members = CLASS_PROTOTYPES.get(str(class_name).strip().lower())
    if members is None:
        return None
    index = {au: k for k, au in enumerate(vocabulary)}
    prior = np.zeros(len(vocabulary), np.float32)
    for member in members:
        for au in EMOTION_PROTOTYPES[member]:
            if au in index:
                prior[index[au]] += 1.0 / len(members)
    return prior


def emotion_au_prior(y: np.ndarray, coded: np.ndarray, known: np.ndarray, classes: Sequence[str],
                     vocabulary: Sequence[str] = AU_VOCABULARY,
                     strength: float = PRIOR_STRENGTH) -> tuple[np.ndarray, np.ndarray]:
    """The emotion -> AU correlation table of one training set: P(AU | class) for each class.

    For class k with table prior t_k (:func:`table_au_prior`) and n_k training clips coded with
    AUs (multi-hot c_i), the prior is (sum_i c_i + strength * t_k) / (n_k + strength): the table
    where a class has no coded clips (SMIC, the published composite flow images), the databases'
    own codes where it has many. Call it with training clips only: it is fitted on them.

    Args:
        y: (N,) int labels in [0, K). coded: (N, A) float32 multi-hot AUs. known: (N,) float32, 1
            where a clip has AU codes. classes: the K class names.
    Returns:
        ``(prior, has_prior)``: (K, A) float32 in [0, 1], and (K,) bool, False for a class with
        neither a table entry nor a coded clip (its uncoded clips stay out of the AU losses).
    """
    K, A = len(classes), len(vocabulary)
    prior = np.zeros((K, A), np.float32)
    has = np.zeros(K, bool)
    for k, name in enumerate(classes):
        rows = (np.asarray(y) == k) & (np.asarray(known) > 0)
        table = table_au_prior(name, vocabulary)
        weight = strength if table is not None else 0.0
        total = coded[rows].sum(0) + (weight * table if table is not None else 0.0)
        n = rows.sum() + weight
        if n > 0:
            prior[k] = total / n
            has[k] = True
    return prior, has
