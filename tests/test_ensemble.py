"""The ensemble: label-free choice, standardised fusion, one graph that equals its members, ensemble.json."""

import json
import os

import numpy as np
import pytest

from asdkeras.data.layout import scan_split
from asdkeras.detector import Detector
from asdkeras.battery import BATTERY, FAMILIES, NOISE_MARGIN, TIE
from asdkeras.names import ENSEMBLE_FILE
from asdkeras.ensemble import fit_ensemble
from asdkeras.ensemble_members import fusion_statistics, load_members, shared_held_out, standardise
from asdkeras.errors import AsdError
from asdkeras.fit import fit_detector, make_config
from asdkeras.scoring import fused_normal_statistics

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")


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
    parts = [standardise(m.detector.score_files(paths, cache), fusion_statistics(m))
             for m in load_members(models, "gearbox")]
    expected = np.mean(parts, axis=0)
    np.testing.assert_allclose(ensemble.score_files(paths, cache), expected, rtol=0, atol=1e-4 * np.abs(expected).max())

    document = json.load(open(os.path.join(models, "gearbox", "ensemble", ENSEMBLE_FILE)))
    assert document["mode"] == "fuse" and document["combine"] == "mean" and document["members"] == ["ae", "gmm"]
    assert document["held_out"]["shared_by_all"] and document["held_out"]["clips"] >= 10
    assert "battery" not in document  # a fixed fusion needs no choice
    # The threshold is predicted from the members' correlation on the shared held-out clips.
    saved = Detector.load(os.path.join(models, "gearbox", "ensemble"))
    assert saved.threshold == pytest.approx(ensemble.threshold)
    record = saved.thresholds["quantile"]
    assert record["rule"] == "fused-prediction" and record["fitted_on"] == document["held_out"]["clips"]
    used = np.array(record["correlation"]["used"])
    assert used.shape == (2, 2) and used.min() >= 0 and np.allclose(np.diag(used), 1)
    # the AE's two views and the GMM's are each judged per condition, (0, 1): fused in the units of their max
    for kind in ("ae", "gmm"):
        views = Detector.load(str(members / "models" / "gearbox" / kind)).thresholds["quantile"]
        fusion = document["figures"][kind]["fusion"]
        assert views["rule"] == "fused-prediction" and views["combine"] == "max"
        assert (fusion["mean"], fusion["std"]) == (views["new_normal"]["mean"], views["new_normal"]["std"])  # at fit
        assert (fusion["mean"], fusion["std"]) == pytest.approx(
            fused_normal_statistics(views["correlation"]["used"], "max"), abs=1e-3)  # the same draws (rounded record)
        assert 0 < fusion["mean"] < 0.6 < fusion["std"] < 1  # the max of two correlated (0, 1) scores
    assert saved.frontend.reads_waveforms and saved.normal_scores["count"] == document["held_out"]["clips"]


def test_battery_choice_is_recorded_per_candidate_and_kind(tiny_dataset, members):
    models, cache = str(members / "models"), str(members / "cache")
    ensemble = fit_ensemble("gearbox", models, data_dir=tiny_dataset, cache_dir=cache, output_dir=str(members / "battery"))
    document = ensemble.info["ensemble"]
    record = document["battery"]
    assert document["mode"] == "battery" and record["other_machine_types"] == ["valve"]  # fan: the AE's outlier
    assert list(record["candidates"]) == ["gmm", "ae", "fuse-mean", "fuse-max"]  # a tie goes to the first: tie_rank
    for candidate in record["candidates"].values():
        assert set(candidate["kinds"]) == {p.name for p in BATTERY} and set(candidate["families"]) == set(FAMILIES)
        assert all(0 <= v <= 1 for v in candidate["kinds"].values())
    # every member judges clips per condition and keeps a steady and a transient view (the AE's mean+peak):
    # every candidate is eligible (the requirements' narrowing: tests/test_ensemble_choice.py)
    assert record["candidates"]["ae"]["views"] == ["steady", "transient"]
    assert record["eligible"] == ["gmm", "ae", "fuse-mean", "fuse-max"]
    assert record["candidates"]["ae"]["per_condition"] and record["candidates"]["fuse-max"]["per_condition"]
    best = max(record["candidates"][name]["mean"] for name in record["eligible"])
    leader = next(name for name in record["eligible"] if record["candidates"][name]["mean"] == best)
    for name in record["eligible"]:  # the battery's sampling error of the leader's lead over every other candidate
        assert (name == leader) != ("lead_error" in record["candidates"][name])
    assert all(record["candidates"][n]["lead_error"]["over"] == leader for n in record["eligible"] if n != leader)

    def margin(name):  # a lead within NOISE_MARGIN x its sampling error (or TIE) is a tie
        return max(TIE, NOISE_MARGIN * record["candidates"][name].get("lead_error", {}).get("sd", 0.0))
    chosen = next(name for name in record["eligible"] if record["candidates"][name]["mean"] >= best - margin(name))
    assert document["members"] == record["candidates"][chosen]["members"]  # the best mean, ties to the first
    assert "standard deviations" in record["ties"]
    assert "among the candidates" not in document["reason"]  # no requirement narrowed them


def test_a_kept_choice_is_built_from_the_members_without_choosing_again(tiny_dataset, members, monkeypatch):
    import asdkeras.ensemble_choice
    from asdkeras.ensemble import KEPT

    models, cache = str(members / "models"), str(members / "cache")

    def no_battery(*args, **kwargs):
        raise AssertionError("the battery ran for a kept choice")

    monkeypatch.setattr(asdkeras.ensemble_choice, "battery_figures", no_battery)
    saved = {"members": ["gmm", "ae"], "combine": "max", "reason": "the fit's choice", "battery": {"rule": "recorded"}}
    kept = fit_ensemble("gearbox", models, data_dir=tiny_dataset, cache_dir=cache, output_dir=str(members / "kept"),
                        kept=saved)
    document = kept.info["ensemble"]
    assert (document["members"], document["combine"], document["battery"]) == (["ae", "gmm"], "max", saved["battery"])
    assert document["reason"] == "the fit's choice" + KEPT
    fused = fit_ensemble("gearbox", models, "fuse", "max", data_dir=tiny_dataset, cache_dir=cache,
                         output_dir=str(members / "fused-max"))
    assert kept.threshold == fused.threshold  # the same members and combination: the same statistics
    again = fit_ensemble("gearbox", models, data_dir=tiny_dataset, cache_dir=cache, output_dir=str(members / "kept"),
                         kept=document)
    assert again.info["ensemble"]["reason"] == document["reason"]  # kept twice, said once
    single = fit_ensemble("gearbox", models, data_dir=tiny_dataset, cache_dir=cache, output_dir=str(members / "kept"),
                          kept={"members": ["ae"], "combine": None, "reason": "the AE"})
    assert single.info["ensemble"]["members"] == ["ae"] and single.threshold == Detector.load(
        os.path.join(models, "gearbox", "ae")).threshold
    with pytest.raises(AsdError, match="the ensemble's member mobilenet is not saved any more; build the ensemble "
                                       "again with 'python cli.py fit --machine gearbox --model ensemble'"):
        fit_ensemble("gearbox", models, data_dir=tiny_dataset, cache_dir=cache, output_dir=str(members / "kept"),
                     kept={"members": ["mobilenet", "gmm"], "combine": "mean", "reason": "both"})


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
