"""Per-database input normalisation: each database's inputs moved to the statistics of all of them.

Databases differ in camera, frame rate, lighting and colour (SAMM is grayscale at 200 fps, CASME II
colour at 200 fps, SMIC-HS colour at 100 fps), and their flow images differ in spread even after the
published per-image min-max. This step gives every database's channels the mean and standard
deviation of the run's pooled inputs (a per-domain standardisation, as in domain-adaptation work),
from the images alone: no label is read, so no class information reaches it. The test subject's
images count in their database's statistics (about 1/16 to 1/28 of them on the composite), as its
own pixels count in its per-image min-max.

For a flow image (u, v, strain) the u channel is only scaled, about 127.5 (zero motion in the
[0, 255] encoding): a training flip maps u to 255 - u, and that commutes with a scaling about
127.5, so a flipped normalised image is the normalised flipped image. The other channels are
shifted and scaled.
"""

from __future__ import annotations

import numpy as np

from mer_keras.errors import DataError

#: The values of ``--input-norm``.
INPUT_NORMS = ("none", "database")
#: The centre of the [0, 255] flow encoding (zero motion), about which u is scaled.
FLOW_CENTRE = 127.5


def database_statistics(x: np.ndarray, databases, flow_input: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (centre, spread) of the pooled inputs and of each database's.

    Args:
        x: (N, ..., C) float32 in [0, 255]. databases: (N,) database name of each input.
        flow_input: channel 0 is the u of a flow image (its centre is fixed at 127.5 and its
            spread is the root mean square about it).
    Returns:
        {"all" | database: (centre (C,) float64, spread (C,) float64)}.
    Raises:
        DataError: the lengths differ, or a database's channel is constant (spread 0).
    """
    databases = np.asarray(databases)
    if len(databases) != len(x):
        raise DataError(f"per-database normalisation: {len(x)} inputs but {len(databases)} database names")

    def stats(values: np.ndarray):
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
        centre = flat.mean(0)
        if flow_input:
            centre[0] = FLOW_CENTRE
        spread = np.sqrt(((flat - centre) ** 2).mean(0))
        return centre, spread

    out = {"all": stats(x)}
    for db in sorted(set(databases.tolist())):
        out[db] = stats(x[databases == db])
        if (out[db][1] <= 0).any():
            raise DataError(f"per-database normalisation: database {db!r} has a constant channel "
                            f"({np.flatnonzero(out[db][1] <= 0).tolist()}); it cannot be scaled")
    return out


def normalise_by_database(x: np.ndarray, databases, flow_input: bool) -> np.ndarray:
    """Each database's channels moved to the pooled centre and spread (:func:`database_statistics`):
    ``x' = (x - centre_db) / spread_db * spread_all + centre_all``, per channel.

    Args:
        x: (N, ..., C) float32 in [0, 255]. databases: (N,) database name of each input.
        flow_input: channel 0 is a flow image's u (scaled about 127.5 only).
    Returns:
        (N, ..., C) float32, about [0, 255] (not clipped: a clip beyond the range keeps its motion).
        With one database the pooled and the database's statistics are the same: x unchanged.
    Raises:
        DataError: see :func:`database_statistics`.
    """
    stats = database_statistics(x, databases, flow_input)
    centre_all, spread_all = stats["all"]
    out = np.empty_like(x, dtype=np.float32)
    databases = np.asarray(databases)
    for db, (centre, spread) in stats.items():
        if db == "all":
            continue
        rows = databases == db
        out[rows] = ((x[rows] - centre) / spread * spread_all + centre_all).astype(np.float32)
    return out
