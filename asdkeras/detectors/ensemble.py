"""The per-machine-type ensemble: built from the machine's fitted detectors, not trained from audio.

The kind ``ensemble``: how it is shown and exported. How it is built (the pseudo-anomaly battery's
choice among the members and their fusion) is :mod:`asdkeras.ensemble`.
"""

from __future__ import annotations

from asdkeras.detectors import DetectorKind, register
from asdkeras.kinds import ENSEMBLE
from asdkeras.names import INT8

KIND = register(DetectorKind(name=ENSEMBLE, title="Ensemble", colour="#9467bd",
                             description="built from the machine's saved detectors",
                             variant_titles={INT8: ("Ensemble int8 twin", "#c5b0d5")}))
