"""asdkeras: anomalous machine-sound detection (DCASE 2022 Task 2) in Keras, deployable as TFLite."""

__version__ = "0.1.0"
