"""Names of the detector kinds and export variants, importable without TensorFlow (the command line's choices).

``asdkeras.fit.TRAINERS`` holds one trainer per name; a test keeps the two in step.
"""

MODEL_KINDS = ("ae", "mobilenet", "gmm")
"""Kinds trained from audio; each has a trainer."""

ENSEMBLE = "ensemble"
"""The kind built from a machine's fitted detectors (see ``asdkeras.ensemble``)."""

DETECTOR_KINDS = MODEL_KINDS + (ENSEMBLE,)
"""Every kind of saved detector."""

ENSEMBLE_MODES = ("battery", "pick", "paper", "fuse")
DEFAULT_ENSEMBLE_MODE = "battery"
"""The candidate (a member, or a fusion of all) the pseudo-anomaly battery prefers among those that keep
both a steady and a transient view (``asdkeras.ensemble``)."""

COMBINATIONS = ("mean", "max")

QUANTISATIONS = ("float32", "float16", "dynamic", "int8")
"""TFLite export variants (see ``asdkeras.export``)."""

INTEGER_VARIANTS = ("dynamic", "int8")
"""The variants converted from a detector's quantisation-aware twin when it has one."""

