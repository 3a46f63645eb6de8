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
    J. See, M. H. Yap, J. Li, X. Hong and S.-J. Wang, "MEGC 2019 - The Second Facial
    Micro-Expressions Grand Challenge", IEEE FG 2019 (the three composite classes negative,
    positive, surprise).

:data:`AU_COMBINATIONS` is EMFACS-style, not the EMFACS table: each class of the composite gets a
few partial prototypes made of the AUs the generator can render (negative pools parts of anger,
disgust, contempt and sadness; positive is happiness; surprise is surprise). Contempt's AU14 is
unilateral in EMFACS; the generator renders it on both sides.
"""

from __future__ import annotations

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
