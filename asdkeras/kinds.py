"""The ensemble's modes and the export variants, importable without TensorFlow (the command line's choices).

The detector kinds themselves are in the registry :mod:`asdkeras.detectors`.
"""

ENSEMBLE = "ensemble"
"""The kind built from a machine's fitted detectors (see ``asdkeras.ensemble``)."""

ENSEMBLE_MODES = ("battery", "pick", "paper", "fuse")
DEFAULT_ENSEMBLE_MODE = "battery"
"""The candidate (a member, or a fusion of all) the pseudo-anomaly battery prefers among those that keep
both a steady and a transient view (``asdkeras.ensemble``)."""

COMBINATIONS = ("mean", "max")

QUANTISATIONS = ("float32", "float16", "dynamic", "int8")
"""TFLite export variants (see ``asdkeras.export``)."""

INTEGER_VARIANTS = ("dynamic", "int8")
"""The variants converted from a detector's quantisation-aware twin when it has one."""

