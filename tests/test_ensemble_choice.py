"""The ensemble without fitted models: standardised fusion, which candidates the battery may ship, the report's choice.

Fitted members, the fused graph and ensemble.json: test_ensemble.py.
"""

from types import SimpleNamespace

import numpy as np

from asdkeras import battery
from asdkeras.ensemble_choice import REPORT_CHOICE, FUSIONS, battery_candidates, eligible, paper_choice
from asdkeras.ensemble_members import standardise
from asdkeras.scoring import combine_members


def test_standardise_and_combine():
    statistics = {"mean": 2.0, "std": 0.5}
    np.testing.assert_allclose(standardise([2.0, 3.0, 1.0], statistics), [0.0, 2.0, -2.0])
    members = [np.array([0.0, 2.0]), np.array([1.0, -1.0])]
    np.testing.assert_allclose(combine_members(np.stack(members, axis=1), "mean"), [0.5, 0.5])
    np.testing.assert_allclose(combine_members(np.stack(members, axis=1), "max"), [1.0, 2.0])


def test_battery_mode_keeps_both_views_then_per_condition_scoring_while_a_candidate_does():
    candidates = {"ae": {"views": ["steady"]}, "mobilenet": {"views": []},
                  "gmm": {"views": ["steady", "transient"], "per_condition": True},
                  "fuse-mean": {"views": ["steady", "transient"], "per_condition": False}}
    assert eligible(candidates) == (["gmm"], ["keeping a steady and a transient view",
                                              "judging each clip in its own operating condition"])
    gmm_mean_only = {**candidates, "gmm": {"views": ["steady"], "per_condition": True}}
    assert eligible(gmm_mean_only) == (["fuse-mean"], ["keeping a steady and a transient view"])
    assert eligible({"ae": {"views": ["steady"]}, "mobilenet": {"views": []}}) == (["ae", "mobilenet"], [])


def test_paper_choice_follows_the_report_and_says_who_stands_in():
    assert REPORT_CHOICE["valve"] == "mobilenet" and paper_choice("valve", ["ae", "mobilenet", "gmm"])[0] == "mobilenet"
    kind, reason = paper_choice("valve", ["ae", "gmm"])
    assert kind == "gmm" and "not fitted" in reason
    assert paper_choice("pump", ["ae", "gmm"]) == ("gmm", "the report has no choice for pump: gmm stands in")


def test_a_battery_tie_goes_to_the_gmm_then_the_ae_then_mobilenet_then_the_fusions():
    def member(kind):
        info = {"views": ["steady", "transient"], "judged_per_condition": True}
        return SimpleNamespace(kind=kind, detector=SimpleNamespace(info=info))

    normal = np.linspace(0.0, 1.0, 20)
    altered = {p.name: normal + 0.5 for p in battery.BATTERY}  # every candidate sees the same faults
    names = ("ae", "mobilenet", "gmm", *FUSIONS)
    candidates = battery_candidates([member(k) for k in ("ae", "mobilenet", "gmm")],
                                    {name: (normal, altered) for name in names})
    assert list(candidates) == ["gmm", "ae", "mobilenet", "fuse-mean", "fuse-max"]
    assert len({c["mean"] for c in candidates.values()}) == 1
    assert battery.choose(candidates)[0] == "gmm"
    ae_first = battery_candidates([member("ae"), member("mobilenet")], {n: (normal, altered) for n in names})
    assert list(ae_first) == ["ae", "mobilenet", "fuse-mean", "fuse-max"]
