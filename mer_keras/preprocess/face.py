"""Face detection, landmarking and clip alignment with the mediapipe face mesh.

The face mesh (Kartynnik et al., "Real-time Facial Surface Geometry from Monocular Video on
Mobile GPUs", CVPR Workshops 2019) gives 468 landmarks; mediapipe 0.10.21 ships its models inside
the wheel, so nothing is downloaded.

Alignment: the landmarks of the onset frame give ONE similarity transform (eye centres level,
fixed inter-ocular distance, fixed eye height), applied to every frame of the clip, then the
square crop. One transform per clip keeps landmark jitter (often larger than a micro-expression)
from masking or mimicking the micro-motion; real head motion stays in the aligned frames.
"""

from __future__ import annotations

import contextlib
import math
import threading

import cv2
import numpy as np

from mer_keras.errors import DataError, OptionError
from mer_keras.preprocess import portable

#: Eye contour landmarks of the mediapipe 468-point mesh (subject's right and left eye).
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)

#: Default crop geometry, as fractions of the crop size.
EYE_DISTANCE = 0.36   # inter-ocular distance (eye centre to eye centre)
EYE_HEIGHT = 0.36     # vertical position of the eye centres


class FaceNotFoundError(DataError):
    """No face was found where one is required (message names the clip or file)."""


class FaceMeshLandmarker:
    """mediapipe face mesh on single images (static mode, one face).

    Call with an (H, W, 3) uint8 RGB or (H, W) uint8 grayscale image; returns (468, 2) float32
    landmark coordinates in pixels (x right, y down), or ``None`` when no face is found.
    Not thread-safe; :func:`get_landmarker` gives one instance per thread.
    """

    def __init__(self, min_detection_confidence: float = 0.5):
        from mer_keras.native import quiet_native_stderr

        # mediapipe's start-up lines. Its graph opens the TFLite models in its own threads after
        # FaceMesh() returns, so a first image is run inside the same block: otherwise their
        # "Created TensorFlow Lite XNNPACK delegate" line can land after the block has ended.
        with quiet_native_stderr():
            import mediapipe as mp

            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                min_detection_confidence=min_detection_confidence)
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))
        self._quiet = True  # until a face is found: the landmark model warns on its first face

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise DataError(f"face mesh needs uint8 images, got {image.dtype}")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        from mer_keras.native import quiet_native_stderr

        with quiet_native_stderr() if self._quiet else contextlib.nullcontext():
            result = self._mesh.process(np.ascontiguousarray(image))
        if not result.multi_face_landmarks:
            return None
        self._quiet = False
        h, w = image.shape[:2]
        pts = np.array([(p.x * w, p.y * h) for p in result.multi_face_landmarks[0].landmark], np.float32)
        return pts

    def close(self) -> None:
        self._mesh.close()


_local = threading.local()


def get_landmarker() -> FaceMeshLandmarker:
    """A lazily created :class:`FaceMeshLandmarker` for the calling thread."""
    if not hasattr(_local, "landmarker"):
        _local.landmarker = FaceMeshLandmarker()
    return _local.landmarker


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the two eye contours, ordered image-left first.

    Args:
        landmarks: (468, 2) float landmarks in pixels.
    Returns:
        Two (2,) float64 points (x, y) in pixels: the eye on the image's left, then the right.
    """
    a = landmarks[list(RIGHT_EYE)].mean(axis=0).astype(np.float64)
    b = landmarks[list(LEFT_EYE)].mean(axis=0).astype(np.float64)
    return (a, b) if a[0] <= b[0] else (b, a)


def alignment_matrix(landmarks: np.ndarray, size: int = 128, eye_distance: float = EYE_DISTANCE,
                     eye_height: float = EYE_HEIGHT) -> np.ndarray:
    """Similarity transform taking the face to the canonical crop.

    The eye centres go to (size * (0.5 -/+ eye_distance / 2), size * eye_height): eyes level,
    inter-ocular distance ``eye_distance * size`` pixels.

    Returns:
        (2, 3) float64 affine matrix for ``cv2.warpAffine`` (source pixels -> crop pixels).
    """
    left, right = eye_centres(landmarks)
    d = right - left
    dist = float(np.hypot(*d))
    if dist < 1e-6:
        raise DataError("degenerate landmarks: both eye centres coincide")
    scale = eye_distance * size / dist
    angle = math.atan2(d[1], d[0])  # math, not numpy: the same bits on every CPU (preprocess/portable.py)
    c, s = scale * math.cos(-angle), scale * math.sin(-angle)
    rot = np.array([[c, -s], [s, c]])
    mid = (left + right) / 2.0
    target = np.array([size / 2.0, eye_height * size])
    t = target - portable.matmul(rot, mid)
    return np.hstack([rot, t[:, None]])


def align_clip(frames, landmarks: np.ndarray | None = None, size: int = 128, reference_index: int = 0,
               clip_id: str = "clip", landmarker: FaceMeshLandmarker | None = None) -> np.ndarray:
    """Align every frame of a clip with the transform of its reference (onset) frame.

    Args:
        frames: sequence or (T, H, W[, 3]) array of uint8 frames, RGB or grayscale.
        landmarks: (468, 2) landmarks of the reference frame; detected when ``None``.
        size: side of the square crop in pixels.
        reference_index: index of the onset frame in ``frames``.
        clip_id: name used in error messages.

    Returns:
        (T, size, size, 3) uint8 aligned RGB frames.

    Raises:
        FaceNotFoundError: no face in the reference frame (message names ``clip_id``).
        DataError: empty clip, a frame that is not an (H, W) or (H, W, 3) uint8 image, or
            landmarks that are not (N, 2) finite points.
        OptionError: reference index out of range, or size < 1.
    """
    if len(frames) == 0:
        raise DataError(f"clip {clip_id} has no frames")
    if not 0 <= reference_index < len(frames):
        raise OptionError(f"reference frame {reference_index} is outside clip {clip_id} of {len(frames)} frames")
    if size < 1:
        raise OptionError(f"clip {clip_id}: crop size must be at least 1 pixel, got {size}")
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)) \
                or 0 in frame.shape:
            raise DataError(f"clip {clip_id}: frame {i} is {frame.shape} {frame.dtype}; expected an (H, W) or "
                            f"(H, W, 3) uint8 image")
    if landmarks is not None:
        points = np.asarray(landmarks)
        if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise DataError(f"clip {clip_id}: landmarks must be (N, 2) finite pixel coordinates, got {points.shape}")
    if landmarks is None:
        landmarks = (landmarker or get_landmarker())(np.asarray(frames[reference_index]))
        if landmarks is None:
            raise FaceNotFoundError(f"no face found in the onset frame of clip {clip_id}")
    m = alignment_matrix(landmarks, size)
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        out[i] = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out
