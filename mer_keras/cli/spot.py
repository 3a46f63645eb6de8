"""``mer-keras spot``: find micro- and macro-expressions in long videos and score them as MEGC does."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.spot import SpotOptions


def _spot(opts: SpotOptions) -> None:
    from mer_keras.jobs.spot import run_spot

    run_spot(opts, console)


spot = command(SpotOptions, _spot,
               doc="Spot micro- and macro-expressions in long videos (synthetic, CAS(ME)^2, SAMM-LV): intervals as "
                   "CSV, MEGC scores (IoU >= 0.5) beside a random baseline, and with --model the class of each "
                   "spotted micro-expression.")
