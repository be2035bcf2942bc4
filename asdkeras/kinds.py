"""Names of the detector kinds and export variants, importable without TensorFlow (the command line's choices).

``asdkeras.fit.TRAINERS`` holds one trainer per name; a test keeps the two in step.
"""

MODEL_KINDS = ("ae", "mobilenet", "gmm")

QUANTISATIONS = ("float32", "float16", "dynamic", "int8")
"""TFLite export variants (see ``asdkeras.export``)."""
