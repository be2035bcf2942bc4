"""Decision thresholds on the synthetic data: every machine type, by one model or both.

An app shows "normal" or "anomaly", so the threshold must flag about the intended share of normal
clips (10 % for the 0.9 quantile) and some anomalies. Thresholds are fitted on held-out training
normals (half of 30 source and 10 target clips per section, DCASE's target count: 45 source and
15 target clips; with 3 or 9 target clips the domain-weighted threshold moved with each training
run, down to flagging no normal at all) and checked here on the **test** normals of both domains (24 each, equal weight), which no
part of the fit saw. Tolerance: a share drawn at 10 % from 48 clips lies in [2 %, 23 %] with
probability 0.95 (binomial); the threshold itself is estimated, so each type may flag at most
30 % and the kind's types together between 2 % and 30 %; each type must flag some clip (of its
test set or of the held-out normals its threshold was fitted on) and the kind some anomalies (the
failure this guards against: a gamma fit whose quantile lay above every test score, flagging
nothing). The clips are the suite's rendering of the first clips of the default scale (seed 0,
``conftest.CHECK_SCALE``), shared with test_synth.py's difficulty check.
"""

import os

import numpy as np
import pytest

from asdkeras.data.layout import scan_split, select
from asdkeras.detector import Detector
from asdkeras.fit import fit_detector, make_config
from conftest import needs_weights

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")

LOW, HIGH = 0.02, 0.30
"""Accepted share of unseen normals flagged (both domains, equal weight), intended 0.10."""
FAST = {"ae": dict(epochs=3, validation_fraction=0.5),
        "mobilenet": dict(width=0.35, image_size=64, epochs=2, fine_tune_epochs=0, augmented_clips=0,
                          validation_fraction=0.5, workers=1, int8_epochs=0)}  # the float detector's threshold


@pytest.fixture(scope="module")
def all_types(synthetic_check_set, tmp_path_factory):
    """The suite's rendering of every type (:data:`conftest.CHECK_SCALE`), and a work folder."""
    return synthetic_check_set, str(tmp_path_factory.mktemp("threshold_work"))


def _flagged_shares(root, work, kind, machine):
    config = make_config(kind, machine=machine, data_dir=root, cache_dir=os.path.join(work, "cache"),
                         models_dir=os.path.join(work, "models"), **FAST[kind])
    fit_detector(kind, config)
    detector = Detector.load(config.folder())
    test = scan_split(root, machine, "test")
    groups = {"source": select(test, label="normal", domain="source"),
              "target": select(test, label="normal", domain="target"), "anomaly": select(test, label="anomaly")}
    return detector, {name: detector.decide(detector.score_files([r.path for r in records],
                                                                 os.path.join(work, "cache"))).mean()
                      for name, records in groups.items()}


KINDS = {"ae": ("bearing", "slider", "valve", "ToyTrain"), "mobilenet": ("fan", "gearbox", "ToyCar")}
"""Every type checked by one kind (a fit costs 10-20 s here): the autoencoder on the types where
its target-domain false alarms were worst before per-condition scoring (70-100 % of one section's
normals on bearing, slider, valve and ToyTrain, BENCHMARKS.md "Decisions in the target domain");
MobileNetV2 on the other three, three of the report's outlier pairings (valve, checked by both
kinds until session 27, is left to the AE: the conditions and thresholds are the same code for
both, ``fit.judge_per_condition``)."""


@pytest.mark.parametrize("kind", [pytest.param("ae"), pytest.param("mobilenet", marks=needs_weights)])
def test_threshold_flags_about_the_intended_share_of_unseen_normals(all_types, kind):
    """Per type: at most HIGH of the normals flagged, and some clip flagged (a threshold above every
    score flags nothing). Over the kind's types together: between LOW and HIGH of the normals, and
    some anomalies.

    The lower bound is checked on the pool, not per type: with 48 normals a type, "at least 2 %" is
    "at least one clip", and a calibrated 10 % threshold flags none or one of 48 in 3.4 % of fits, a
    MobileNetV2 of 2 epochs at 64 px (about 5 % here) in a third of them: over the 7 fits a run would
    fail for no fault at all (it came to 1 of 48 on valve and ToyCar). So do its anomalies (2 of 48
    on ToyCar).
    """
    root, work = all_types
    pooled = []
    for machine in KINDS[kind]:
        detector, share = _flagged_shares(root, work, kind, machine)
        record = detector.thresholds["quantile"]
        normal_share = (share["source"] + share["target"]) / 2
        print(f"{machine:9s} {kind:9s} rule {record['rule']:9s} held-out {record['fitted_on']:3d} normals flagged "
              f"{normal_share:.3f} (source {share['source']:.3f}, target {share['target']:.3f}) "
              f"anomalies flagged {share['anomaly']:.3f}")
        assert record["fitted_on"] >= 10 and "held-out" in record["description"], machine
        assert normal_share <= HIGH, machine
        # not above every score of the type: its test clips', or its held-out training normals' (a
        # 2-epoch MobileNetV2 at 0.9 confidence flags about 5 % of normals and, no better than
        # chance, as many anomalies: none of 96 test clips in some fits, as on fan at seed 0)
        assert normal_share + share["anomaly"] + record["flagged_share"] > 0, machine
        pooled.append((normal_share, share["anomaly"]))
    normals, anomalies = np.mean(pooled, axis=0)
    print(f"{kind}: over {len(pooled)} types normals flagged {normals:.3f}, anomalies {anomalies:.3f}")
    assert LOW <= normals <= HIGH and anomalies > 0
