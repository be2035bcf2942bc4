"""The pooled-GMM detector: GWRP, the mixture layer against scikit-learn, the fit and the CLI."""

import json

import numpy as np
import pytest
import scipy.stats
from click.testing import CliRunner
from sklearn.mixture import GaussianMixture

import cli
from asdkeras.errors import AsdError
from asdkeras.detectors.gmm import GmmConfig
from asdkeras.models.gmm import (GaussianMixtureNLL, GWRPooling, PoolingView, assigned_group_score, gwrp_weights,
                                 views_scoring_model)
from asdkeras.models.mixtures import Mixture, fit_group_mixtures, fit_mixture, group_of, kde_bandwidth


def test_gwrp_at_decay_one_is_the_mean_and_at_zero_the_max():
    frames = np.random.default_rng(0).normal(-40, 10, (3, 313, 128)).astype("float32")
    pooled = GWRPooling([1.0, 0.0])(frames).numpy()
    np.testing.assert_allclose(pooled[:, :128], frames.mean(axis=1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(pooled[:, 128:], frames.max(axis=1), rtol=1e-6)


def test_gwrp_weights_rank_the_loudest_frames_first():
    weights = gwrp_weights(0.5, 4)
    np.testing.assert_allclose(weights, np.array([8, 4, 2, 1]) / 15)
    frames = np.array([[[1.0], [4.0], [2.0], [3.0]]], "float32")  # sorted descending: 4, 3, 2, 1
    np.testing.assert_allclose(GWRPooling([0.5])(frames).numpy(), [[(32 + 12 + 4 + 1) / 15]], rtol=1e-6)
    with pytest.raises(ValueError, match="decay"):
        gwrp_weights(1.5, 4)


def test_mixture_layer_matches_scikit_learn_score_samples():
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(0, 1, (200, 16)), rng.normal(3, 0.5, (200, 16))])
    gmm = GaussianMixture(3, covariance_type="full", random_state=0).fit(data)
    layer = GaussianMixtureNLL(3, 16)
    layer.build((None, 16))
    layer.set_mixture(gmm.weights_, gmm.means_, gmm.precisions_cholesky_)
    queries = rng.normal(1, 2, (50, 16)).astype("float32")
    np.testing.assert_allclose(layer(queries).numpy(), -gmm.score_samples(queries.astype(np.float64)), rtol=1e-5)


def test_target_clips_get_components_of_their_own():
    rng = np.random.default_rng(2)
    vectors = np.concatenate([rng.normal(0, 1, (40, 4)), rng.normal(5, 1, (3, 4))])
    domains = np.array(["source"] * 40 + ["target"] * 3)
    weights, means, chol, summary = fit_mixture(vectors, domains, np.array(["00"] * 43), 2, 0.1)
    assert summary["00"] == {"source_clips": 40, "source_components": 2, "target_components": 3}
    assert len(weights) == 5 and weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights[2:], 0.5 / 3)  # the target domain weighs half
    np.testing.assert_allclose(means[2:], vectors[40:])


@pytest.mark.parametrize("decay, expected", [(1.0, (1.0,)), ("fuse", (1.0, 0.5)), ("paper", (0.46,)), (0.3, (0.3,)),
                                             ("battery", None)])
def test_pooling_rule(decay, expected):
    decays, components, reason = GmmConfig(machine="valve", pooling_decay=decay).pooling()
    assert decays == expected and reason
    assert components == 2  # the paper's valve setting has 2 components too
    assert GmmConfig(machine="valve").pooling()[0] is None  # the default: chosen by the battery


def test_bad_pooling_decay_is_a_clear_error():
    with pytest.raises(AsdError, match="battery, fuse, paper or a decay"):
        GmmConfig(machine="valve", pooling_decay="1.5").pooling()


def _mixture(rng, components, dim, shift=0.0):
    gmm = GaussianMixture(components, covariance_type="full", reg_covar=0.1, random_state=0)
    gmm.fit(rng.normal(shift, 1, (40, dim)))
    return Mixture(gmm.weights_, gmm.means_, gmm.precisions_cholesky_)


def test_views_model_computes_the_assigned_group_scores_and_fuses_views_by_their_max():
    rng = np.random.default_rng(3)
    frames = rng.normal(-40, 10, (6, 20, 4)).astype("float32")
    views = []
    for decay, stats in ((1.0, {"source": (3.0, 2.0), "00/target": (5.0, 4.0)}),
                         (0.0, {"source": (-1.0, 3.0), "00/target": (2.0, 0.5)})):
        pooled = GWRPooling([decay])(frames).numpy().astype(np.float64)
        mixtures = {"source": _mixture(rng, 2, 4), "00/target": _mixture(rng, 1, 4, shift=1.5)}
        views.append(PoolingView(decay, pooled.mean(axis=0), pooled.var(axis=0) + 1.0, mixtures, stats))
    expected = np.max([v.score(GWRPooling([v.decay])(frames).numpy().astype(np.float64)) for v in views], axis=0)
    model = views_scoring_model(20, 4, views, "max")
    np.testing.assert_allclose(model(frames).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert {"gwrp_r100", "gwrp_r000", "gmm_nll_g0_r100", "gmm_nll_g1_r000",
            "fuse_scores_groups_r100", "fuse_scores"} <= {layer.name for layer in model.layers}


def test_a_clip_is_judged_in_the_group_most_likely_to_have_produced_it():
    nll = {"source": np.array([1.0, 50.0, 9.0]), "00/target": np.array([40.0, 20.0, 8.0])}
    stats = {"source": (0.0, 1.0), "00/target": (20.0, 10.0)}
    # clip 0: source (z 1); clip 1: target (z 0); clip 2: between the two (NLLs 9 and 8): a blend of
    # source's z 9 and target's -1.2 by their posteriors 1/(1+e) and e/(1+e)
    p = np.e / (1 + np.e)
    np.testing.assert_allclose(assigned_group_score(nll, stats), [1.0, 0.0, (1 - p) * 9.0 + p * -1.2], atol=1e-6)
    infinite = {"source": np.array([1.0]), "00/target": np.array([np.inf])}
    np.testing.assert_allclose(assigned_group_score(infinite, stats), [1.0])  # a group not fitted in a fold


def test_group_mixtures_and_the_target_kernels_bandwidth():
    rng = np.random.default_rng(4)
    source = rng.normal(0, 1, (60, 3))
    spread_targets = rng.normal(6, 5, (8, 3))  # a target condition whose clips differ far more than the source's
    vectors = np.concatenate([source, spread_targets])
    domains = np.array(["source"] * 60 + ["target"] * 8)
    mixtures, summary = fit_group_mixtures(vectors, domains, np.array(["00"] * 68), 2, 0.1)
    assert list(mixtures) == ["00/source", "00/target"] and group_of(["00", "00"], ["source", "target"]).tolist() == \
        ["00/source", "00/target"]
    assert summary["00"]["target_components"] == 8 and summary["00"]["target_bandwidth"] >= 8
    np.testing.assert_allclose(mixtures["00/target"].means, spread_targets)
    assert mixtures["00/source"].weights.sum() == pytest.approx(1.0) and mixtures["00/target"].weights.sum() == pytest.approx(1)
    identity = np.eye(3)
    assert kde_bandwidth(rng.normal(0, 1, (10, 3)), identity) <= 2.0  # kernels of the clips' own spread
    assert kde_bandwidth(rng.normal(0, 1, (2, 3)), identity) == 1.0  # nothing to leave out


def test_default_fit_records_the_battery_and_keeps_both_views(tiny_dataset, tmp_path):
    from asdkeras.battery import BATTERY, FAMILIES
    from asdkeras.fit import fit_detector, make_config
    from asdkeras.models.gmm import RECORDED_DECAYS, VIEW_CANDIDATES

    config = make_config("gmm", machine="valve", data_dir=tiny_dataset, cache_dir=str(tmp_path / "cache"),
                         models_dir=str(tmp_path / "models"))
    detector = fit_detector("gmm", config)
    document = json.load(open(tmp_path / "models" / "valve" / "gmm" / "detector.json"))
    record = document["battery"]
    assert set(record["candidates"]) == set(VIEW_CANDIDATES)
    assert set(record["single_poolings"]) == {f"r = {d:g}" for d in RECORDED_DECAYS}
    for figures in [*record["candidates"].values(), *record["single_poolings"].values()]:
        assert set(figures["kinds"]) == {p.name for p in BATTERY} and set(figures["families"]) == set(FAMILIES)
    chosen = record["chosen"]
    assert document["pooling"]["decays"] == list(VIEW_CANDIDATES[chosen])
    assert document["pooling"]["views"] == ["steady", "transient"] and "battery" in document["pooling"]["reason"]
    assert record["candidates"][chosen]["mean"] >= max(c["mean"] for c in record["candidates"].values()) - 0.005
    # the battery, the groups' and views' standardisation and the threshold: out-of-fold scores of all normals
    assert "out-of-fold" in record["scored"] and "out-of-fold" in detector.thresholds["quantile"]["description"]
    # 2 target clips a section: a section whose two fall in one fold has no out-of-fold statistics, and is left out
    groups = document["mixture"]["groups_scored_apart"] + document["mixture"]["groups_left_out"]
    assert sorted(groups) == [f"{section}/{domain}" for section in ("00", "01", "02") for domain in ("source", "target")]
    assert {"00/source", "01/source", "02/source"} <= set(document["mixture"]["groups_scored_apart"])
    assert set(detector.thresholds["quantile"]["flagged_share_by_group"]) == {"source", "target"}
    # the views stay judged per condition: the threshold is their max's quantile for a new normal clip, which
    # keeps the margin the groups were widened for (confidence), and the ensemble fuses it as (0, 1) views
    record = detector.thresholds["quantile"]
    assert record["rule"] == "fused-prediction" and record["combine"] == "max" and record["confidence"] == 0.9
    assert record["fitted_on"] == document["clips"]["train_normal"] + document["clips"]["val_normal"]
    # between one view's 0.9 quantile and that of the max of two independent ones (Phi^2 = 0.9)
    assert scipy.stats.norm.ppf(0.9) - 1e-3 <= record["value"] <= scipy.stats.norm.ppf(np.sqrt(0.9)) + 1e-2
    from asdkeras.ensemble_members import Member, fusion_statistics
    assert "views judged per condition" in fusion_statistics(Member("gmm", "", detector, None))["from"]


def test_fit_and_test_gmm_from_the_command_line(tiny_dataset, tmp_path):
    common = ["--data", tiny_dataset, "--models-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    fitted = CliRunner().invoke(cli.cli, ["fit", "--machine", "valve", "--model", "gmm", "--pooling-decay", "paper",
                                          *common])
    assert fitted.exit_code == 0, fitted.output
    document = json.load(open(tmp_path / "models" / "valve" / "gmm" / "detector.json"))
    assert document["pooling"]["decays"] == [0.46] and "TWFR-GMM" in document["pooling"]["reason"]
    assert document["mixture"]["components_per_section"] == 2
    tested = CliRunner().invoke(cli.cli, ["test", "--machine", "valve", "--model", "gmm",
                                          "--result-dir", str(tmp_path / "results"), *common])
    assert tested.exit_code == 0, tested.output
    assert 0 < json.load(open(tmp_path / "results" / "metrics_gmm_valve.json"))["official_score"] <= 1
    wrong = CliRunner().invoke(cli.cli, ["fit", "--machine", "valve", "--model", "gmm", "--epochs", "3", *common])
    assert wrong.exit_code == 2 and "--epochs does not apply to --model gmm" in wrong.output
    # one pooling with enough held-out clips (12 of 24 here): the threshold comes from their scores
    from asdkeras.fit import fit_detector, make_config

    fit_detector("gmm", make_config("gmm", machine="valve", pooling_decay="1", validation_fraction=0.5,
                                    data_dir=tiny_dataset, cache_dir=str(tmp_path / "cache"),
                                    output_dir=str(tmp_path / "models" / "valve" / "gmm-mean")))
    document = json.load(open(tmp_path / "models" / "valve" / "gmm-mean" / "detector.json"))
    assert document["thresholds"]["quantile"]["fitted_on"] == 12
    assert "held-out" in document["thresholds"]["quantile"]["description"]


def test_out_of_fold_scores_look_like_new_clips_not_like_fitted_ones():
    """A mixture scores the clips it was fitted on low; out-of-fold scores are what a threshold needs."""
    from asdkeras.detectors.gmm import gmm_out_of_fold_scores
    from asdkeras.models.mixtures import fit_mixture, mixture_nll

    rng = np.random.default_rng(0)
    clips = rng.normal(size=(30, 6))
    domains, sections = np.array(["source"] * 26 + ["target"] * 4), np.array(["00"] * 30)
    new = rng.normal(size=(200, 6))
    weights, means, chol, _ = fit_mixture(clips, domains, sections, 2, 0.1)
    in_sample, unseen = mixture_nll(clips, weights, means, chol), mixture_nll(new, weights, means, chol)
    out_of_fold, folds = gmm_out_of_fold_scores(clips, domains, sections, 2, 0.1, seed=0)
    assert folds == 5 and out_of_fold.shape == (30,)
    assert np.median(in_sample) < np.median(out_of_fold)
    # The 0.9 quantile should flag about 10 % of new normals: on in-sample scores it flags 65 %.
    assert np.mean(unseen > np.quantile(in_sample, 0.9)) > 0.4
    assert 0.02 < np.mean(unseen > np.quantile(out_of_fold, 0.9)) < 0.2  # measured 0.07


def test_a_tolerance_widens_each_group_for_its_clip_count():
    """With ``confidence`` a group of 10 clips is widened more than one of 40, each as prediction_scale says."""
    from asdkeras.detectors.gmm import group_out_of_fold_scores
    from asdkeras.models.condition_statistics import prediction_scale

    rng = np.random.default_rng(1)
    clips = np.r_[rng.normal(size=(40, 4)), rng.normal(1.0, 1.0, size=(10, 4))]
    domains, sections = np.array(["source"] * 40 + ["target"] * 10), np.array(["00"] * 50)
    judged = {c: group_out_of_fold_scores(clips, domains, sections, 2, 0.1, 0, 0.9, {}, confidence=c)
              for c in (None, 0.75)}
    for group, clip_count in (("00/source", 40), ("00/target", 10)):
        plain, tolerant = judged[None][2][group], judged[0.75][2][group]
        assert tolerant[0] == pytest.approx(plain[0])
        assert tolerant[1] / plain[1] == pytest.approx(prediction_scale(clip_count, 0.9, 0.75)
                                                       / prediction_scale(clip_count, 0.9))
    # every clip's score is standardised by its group's wider spread: the normals' scores move towards 0
    assert np.abs(judged[0.75][0]).mean() < np.abs(judged[None][0]).mean()
