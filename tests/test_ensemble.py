"""The ensemble: label-free choice, standardised fusion, one graph that equals its members, ensemble.json."""

import json
import os

import numpy as np
import pytest

from asdkeras.data.layout import scan_split
from asdkeras.detector import Detector
from asdkeras.ensemble import (ENSEMBLE_FILE, REPORT_CHOICE, _paper_choice, combine, contaminate, fit_ensemble,
                               load_members, pick_by_proxy, shared_held_out, standardise)
from asdkeras.errors import AsdError
from asdkeras.fit import fit_detector, make_config


def test_standardise_and_combine():
    statistics = {"mean": 2.0, "std": 0.5}
    np.testing.assert_allclose(standardise([2.0, 3.0, 1.0], statistics), [0.0, 2.0, -2.0])
    members = [np.array([0.0, 2.0]), np.array([1.0, -1.0])]
    np.testing.assert_allclose(combine(members, "mean"), [0.5, 0.5])
    np.testing.assert_allclose(combine(members, "max"), [1.0, 2.0])


def test_pick_breaks_ties_by_pauc_then_kind_order():
    assert pick_by_proxy({"ae": {"auc": 0.9, "pauc": 0.5}, "gmm": {"auc": 0.95, "pauc": 0.1}})[0] == "gmm"
    kind, reason = pick_by_proxy({"ae": {"auc": 1.0, "pauc": 0.8}, "gmm": {"auc": 0.998, "pauc": 0.9}})
    assert kind == "gmm" and "tied" in reason
    assert pick_by_proxy({"gmm": {"auc": 1.0, "pauc": 1.0}, "ae": {"auc": 1.0, "pauc": 1.0}})[0] == "ae"


def test_paper_choice_follows_the_report_and_says_who_stands_in():
    assert REPORT_CHOICE["valve"] == "mobilenet" and _paper_choice("valve", ["ae", "mobilenet", "gmm"])[0] == "mobilenet"
    kind, reason = _paper_choice("valve", ["ae", "gmm"])
    assert kind == "gmm" and "not fitted" in reason
    assert _paper_choice("pump", ["ae", "gmm"]) == ("gmm", "the report has no choice for pump: gmm stands in")


def test_contaminate_adds_the_other_sound_at_the_requested_level():
    rng = np.random.default_rng(0)
    normals = rng.normal(0, 0.1, (4, 16000)).astype(np.float32)
    others = rng.normal(0, 0.5, (3, 16000)).astype(np.float32)
    mixed = contaminate(normals, others, 10.0, np.random.default_rng(1))
    added = mixed - normals
    ratio_db = 10 * np.log10(np.mean(normals ** 2, axis=1) / np.mean(added ** 2, axis=1))
    np.testing.assert_allclose(ratio_db, 10.0, atol=1e-3)


@pytest.fixture(scope="module")
def members(tiny_dataset, tmp_path_factory):
    """An autoencoder and a pooled GMM of gearbox, fitted on the tiny set (held-out clips shared)."""
    work = tmp_path_factory.mktemp("ensemble")
    for kind, options in (("ae", dict(epochs=1, outlier="fan")), ("gmm", {})):
        config = make_config(kind, machine="gearbox", data_dir=tiny_dataset, cache_dir=str(work / "cache"),
                             models_dir=str(work / "models"), validation_fraction=0.5, **options)
        fit_detector(kind, config)
    return work


def _test_paths(tiny_dataset):
    return [r.path for r in scan_split(tiny_dataset, "gearbox", "test")]


def test_fused_graph_equals_the_standardised_mean_of_its_members(tiny_dataset, members):
    models, cache = str(members / "models"), str(members / "cache")
    ensemble = fit_ensemble("gearbox", models, "fuse", "mean", data_dir=tiny_dataset, cache_dir=cache)
    paths = _test_paths(tiny_dataset)
    parts = [standardise(m.detector.score_files(paths, cache), m.detector.normal_scores)
             for m in load_members(models, "gearbox")]
    expected = np.mean(parts, axis=0)
    np.testing.assert_allclose(ensemble.score_files(paths, cache), expected, rtol=0, atol=1e-4 * np.abs(expected).max())

    document = json.load(open(os.path.join(models, "gearbox", "ensemble", ENSEMBLE_FILE)))
    assert document["mode"] == "fuse" and document["combine"] == "mean" and document["members"] == ["ae", "gmm"]
    assert document["held_out"]["shared_by_all"] and document["held_out"]["clips"] >= 10
    assert document["proxy"]["machine_types"] == ["valve"]  # fan is the AE's outlier type: excluded
    for kind in ("ae", "gmm"):
        figures = document["figures"][kind]
        assert set(figures["levels"]) == {"20 dB", "10 dB"} and 0 <= figures["auc"] <= 1
    # The threshold is refitted on the fused scores of the shared held-out clips.
    saved = Detector.load(os.path.join(models, "gearbox", "ensemble"))
    assert saved.threshold == pytest.approx(ensemble.threshold)
    assert "fused" in saved.thresholds["quantile"]["description"]
    assert saved.frontend.reads_waveforms and saved.normal_scores["count"] == document["held_out"]["clips"]


def test_pick_and_paper_score_exactly_like_the_chosen_member(tiny_dataset, members):
    models, cache = str(members / "models"), str(members / "cache")
    paths = _test_paths(tiny_dataset)
    for mode in ("pick", "paper"):
        ensemble = fit_ensemble("gearbox", models, mode, data_dir=tiny_dataset, cache_dir=cache,
                                output_dir=str(members / mode))
        chosen = ensemble.info["ensemble"]["members"]
        assert len(chosen) == 1
        member = Detector.load(os.path.join(models, "gearbox", chosen[0]))
        # The ensemble computes features in its graph, the member read them from the cache: float32 apart.
        expected = member.score_files(paths, cache)
        np.testing.assert_allclose(ensemble.score_files(paths, cache), expected, rtol=0,
                                   atol=1e-4 * np.abs(expected).max())
        assert ensemble.threshold == member.threshold and ensemble.score_units == member.score_units
    # The report picks MobileNetV2 for gearbox; it is not fitted here, so the GMM stands in.
    assert "not fitted" in Detector.load(str(members / "paper")).info["ensemble"]["reason"]


def test_shared_held_out_excludes_every_members_training_clips(tiny_dataset, members):
    loaded = load_members(str(members / "models"), "gearbox")
    shared, enough = shared_held_out(loaded)
    trained = {r.path for m in loaded for r in m.config.normal_split()[0]}
    assert enough and shared and not trained & {r.path for r in shared}


def test_no_members_is_a_one_line_error(tmp_path):
    with pytest.raises(AsdError, match="no fitted detector to build an ensemble from"):
        fit_ensemble("valve", str(tmp_path))
    with pytest.raises(AsdError, match="unknown ensemble mode"):
        fit_ensemble("valve", str(tmp_path), "vote")
