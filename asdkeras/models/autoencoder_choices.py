"""The autoencoder's named choices, importable without TensorFlow (the command line's and the
configuration's choices; the model that implements them: :mod:`asdkeras.models.autoencoder`)."""

ERROR_POOLINGS = {"mean": (1.0,), "mean+peak": (1.0, 0.5)}
"""How a clip's per-vector reconstruction errors become its raw scores, as GWRP decays (see
:func:`asdkeras.models.gmm.gwrp_weights`). ``mean``: the clip-mean error of the DCASE baseline, one
steady view: a short event is averaged away over the clip's 309 vectors. ``mean+peak``: beside it a
transient view, ``r = 0.5``, half the weight on the clip's largest error, a quarter on the next
(the peak, less noisy than one vector); each view is judged in the clip's condition and the two
fused by their maximum, so neither dilutes the other (:mod:`asdkeras.models.conditions`)."""

LOSSES = {"mse": "clear AE on normals", "oe": "the report's |y - e(x)|",
          "oe-hinge": "max(0, m - e(x)) on outliers"}
"""Training loss -> what it is, on ``(y, e)`` with ``y`` = 1 for outliers: mse, the plain ("clear")
AE trained on normals only; oe, the report's Eq. 1; oe-hinge, e(x) on normals and
max(0, margin - e(x)) on outliers."""
