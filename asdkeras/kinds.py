"""The ensemble's modes and the export variants, importable without TensorFlow (the command line's choices).

The detector kinds themselves are in the registry :mod:`asdkeras.detectors`.
"""

from asdkeras.names import INT8

ENSEMBLE = "ensemble"
"""The kind built from a machine's fitted detectors (see ``asdkeras.ensemble``)."""

ENSEMBLE_MODES = ("battery", "pick", "paper", "fuse")
DEFAULT_ENSEMBLE_MODE = "battery"
"""The candidate (a member, or a fusion of all) the pseudo-anomaly battery prefers among those that keep
both a steady and a transient view (``asdkeras.ensemble``)."""

COMBINATIONS = ("mean", "max")

QUANTISATIONS = ("float32", "float16", "dynamic", "int8")
"""TFLite quantisations of an export (see ``asdkeras.export``)."""

INTEGER_QUANTISATIONS = ("dynamic", "int8")
"""The TFLite quantisations with integer weights."""
CONVERTED_FROM_VARIANT = {quantisation: INT8 for quantisation in INTEGER_QUANTISATIONS}
"""TFLite quantisation -> the detector variant (``asdkeras.names.VARIANTS``) it is converted from,
when the detector has that variant."""

