"""Rules for the default GMM's operating conditions, judged on fresh normals and on the test clips.

    .venv/bin/python benchmarks/normal_rates.py --seed 101 --models-dir /tmp/seed101/models-tol75 \\
        --machines fan,gearbox,bearing,slider,valve,ToyCar,ToyTrain --variants gmm --clips 50 --fresh-dir /tmp/fresh101
    .venv/bin/python benchmarks/gmm_target_rules.py --seeds 0,81,91,101 \\
        --data /tmp/seed{seed} --models-dir /tmp/seed{seed}/models-tol75 --fresh-dir /tmp/fresh{seed}

A replica of the default GMM's scoring (:func:`asdkeras.detectors.gmm.group_out_of_fold_scores`,
:func:`asdkeras.models.gmm.assigned_group_score`, the views the saved detector chose, fused by
their maximum), fitted on every training normal of a synthetic seed (the detector holds 18 out
for the ensemble), with one thing changed per rule:

- ``default``: the GMM as shipped before 3015bb0, at 0.75 confidence (the default until session
  19's end). Each condition's NLLs standardised by its own clips' out-of-fold NLLs, widened by
  the tolerance factor (:func:`~asdkeras.models.condition_statistics.prediction_scale`,
  0.9 at 0.75 confidence); the views re-standardised by all clips' out-of-fold scores; the
  threshold the domain-balanced 0.9 quantile of those scores (:func:`asdkeras.scoring.quantile_threshold`).
- ``views-prediction``: the views kept in their conditions' units and the threshold the 0.9
  quantile of the maximum of the views, from their correlation (:func:`asdkeras.scoring.fused_prediction_threshold`),
  as the ensemble's: the tolerance margin is not taken back by an empirical quantile.
- ``distance``: each NLL replaced by the square root of its excess over the mixture's lowest
  NLL (a Mahalanobis-like distance, less skewed than the NLL) before it is standardised.
- ``scatter-kernels``: a target condition's kernels take the source covariance plus the
  condition's own clips' scatter, so new clips varying as the training clips do are not far.
- ``gaussian-target``: a target condition is one Gaussian, at its clips' mean with that covariance.
- ``source-simulated``: a target condition's widening is at least the one measured on its
  section's source clips: subsets of as many source clips as the condition holds, each
  standardised as the condition is, and the level that keeps 0.9 of the other source clips
  with 0.75 confidence (the tolerance of heavy-tailed NLLs, measured instead of assumed normal).
- ``most-typical``: each clip judged in the condition where its standardised NLL is lowest,
  instead of in the condition most likely to have produced it.
- ``confidence-0.9``: the default with ``--threshold-confidence 0.9`` (every condition keeps 0.9
  of its new normals with probability 0.9: a 10-clip condition's spread x1.62 instead of x1.30);
  ``views-prediction-0.9`` both changes: the GMM as shipped since 3015bb0.
- ``pooled-target-spread``: as shipped (``views-prediction-0.9``), but a target condition's spread
  is the within-condition spread pooled over the type's target conditions (each about its own
  mean; about 27 degrees of freedom instead of 9), widened by the tolerance factor of a mean from
  its own clips and that pooled spread; ``target-spread-floor``: its own spread, raised to that
  pooled one where smaller (10 clips that happen to lie close together).

Fresh normals (``--fresh-dir``, rendered by ``normal_rates.py --fresh-dir``; no detector saw
them) give each condition's share of normals flagged to within a few points, where the test
set's 10 a condition cannot; AUCs and recall come from the test clips. Per rule it prints the
mean share flagged per domain, the conditions above 25 % and 40 % (issue 17's caps) and the
test AUC and recall, means over sections and type-seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np
import scipy.stats

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.detector import Detector  # noqa: E402
from asdkeras.models import mixtures  # noqa: E402
from asdkeras.models.condition_statistics import pooled_variance, prediction_scale  # noqa: E402
from asdkeras.models.gmm import assigned_group_score  # noqa: E402
from asdkeras.scoring import fused_prediction_threshold, quantile_threshold  # noqa: E402

QUANTILE, CONFIDENCE, FOLDS, COMPONENTS, COVARIANCE_REG = 0.9, 0.75, 5, 2, 0.1
SUBSETS = 40
"""Random subsets drawn per condition: of its section's source clips by the ``source-simulated``
rule, of its fresh normals by ``--explain``."""


@dataclass(frozen=True)
class Rule:
    """What the replica changes: the views' threshold, the scale the NLLs are standardised on, the
    target conditions' kernels, their widening, and the condition a clip is judged in (see the
    module docstring's rules; the defaults are the GMM's before 3015bb0)."""

    threshold: str = "empirical"   # or "views-prediction"
    transform: str = "nll"         # or "distance"
    kernel: str = "source"         # or "scatter", "gaussian"
    simulate: bool = False
    judged_in: str = "likeliest"   # or "most-typical"
    confidence: float = CONFIDENCE
    target_spread: str = "own"     # or "pooled", "floor"


RULES = {"default": Rule(), "views-prediction": Rule(threshold="views-prediction"),
         "distance": Rule(transform="distance"), "scatter-kernels": Rule(kernel="scatter"),
         "gaussian-target": Rule(kernel="gaussian"), "source-simulated": Rule(simulate=True),
         "most-typical": Rule(judged_in="most-typical"), "confidence-0.9": Rule(confidence=0.9),
         "views-prediction-0.9": Rule(threshold="views-prediction", confidence=0.9),
         "pooled-target-spread": Rule(threshold="views-prediction", confidence=0.9, target_spread="pooled"),
         "target-spread-floor": Rule(threshold="views-prediction", confidence=0.9, target_spread="floor")}


@contextlib.contextmanager
def target_kernels(kind: str):
    """Swap :func:`asdkeras.models.mixtures.section_mixtures`' target kernels for ``kind``."""
    original = mixtures.section_mixtures
    if kind == "source":
        yield
        return

    def swapped(vectors, domains, sections, section, components, covariance_reg, seed, bandwidth):
        gmm, target, chol, summary = original(vectors, domains, sections, section, components, covariance_reg,
                                              seed, bandwidth)
        if len(target) < 3:
            return gmm, target, chol, summary
        covariance = np.einsum("k,kde->de", gmm.weights_, gmm.covariances_) + np.cov(target, rowvar=False)
        chol = np.linalg.cholesky(np.linalg.inv(covariance))
        if kind == "gaussian":
            return gmm, target.mean(axis=0, keepdims=True), chol[np.newaxis], summary
        chol = chol / np.sqrt(mixtures.kde_bandwidth(target, chol))
        return gmm, target, np.repeat(chol[np.newaxis], len(target), axis=0), summary

    mixtures.section_mixtures = swapped
    try:
        yield
    finally:
        mixtures.section_mixtures = original


def kde_nll(points: np.ndarray, clips: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """NLLs of ``points`` under equal Gaussian kernels (precision Cholesky ``chol``) on ``clips``."""
    return mixtures.mixture_nll(points, np.full(len(clips), 1 / len(clips)), clips,
                                np.repeat(chol[np.newaxis], len(clips), axis=0))


def levels_of_subsets(pool: np.ndarray, base_chol: np.ndarray, clips: int, seed: int,
                      subsets: int = SUBSETS) -> np.ndarray:
    """Per random subset of ``clips`` of ``pool``: the :data:`QUANTILE` of the other clips' NLLs under
    the subset's kernel density, in units of the subset's own leave-one-out NLLs (mean 0, spread 1)."""
    rng = np.random.default_rng(seed)
    return np.array([level_of(pool[order[:clips]], pool[order[clips:]], base_chol)
                     for order in (rng.permutation(len(pool)) for _ in range(subsets))])


def level_of(clips: np.ndarray, new: np.ndarray, base_chol: np.ndarray) -> float:
    """The :data:`QUANTILE` of ``new`` clips' NLLs under a kernel density on ``clips`` (bandwidth as
    fitted), standardised by the ``clips``' own leave-one-out NLLs."""
    chol = base_chol / np.sqrt(mixtures.kde_bandwidth(clips, base_chol))
    left_out = np.array([kde_nll(clips[i:i + 1], np.delete(clips, i, axis=0), chol)[0] for i in range(len(clips))])
    z = (kde_nll(new, clips, chol) - left_out.mean()) / max(left_out.std(ddof=1), 1e-12)
    return float(np.quantile(z, QUANTILE))


def source_simulated_scale(source: np.ndarray, base_chol: np.ndarray, clips: int, seed: int,
                           confidence: float) -> float:
    """The widening, over the normal quantile, that keeps :data:`QUANTILE` of new clips below a
    condition's level with ``confidence``, measured on ``clips``-clip subsets of ``source``."""
    if clips < 3 or len(source) < clips + 10:
        return 1.0
    levels = levels_of_subsets(source, base_chol, clips, seed)
    return float(np.quantile(levels, confidence) / scipy.stats.norm.ppf(QUANTILE))


def judged(rule: Rule, nll: dict, stats: dict, values: dict | None = None) -> np.ndarray:
    """A clip's view score: standardised in its likeliest condition (the GMM's rule), or its lowest
    standardised score over all conditions (``most-typical``)."""
    if rule.judged_in == "likeliest":
        return assigned_group_score(nll, stats, values)
    values = nll if values is None else values
    return np.min([np.where(np.isfinite(values[g]), (values[g] - mean) / max(std, 1e-12), np.inf)
                   for g, (mean, std) in stats.items()], axis=0)


def view_scores(rule: Rule, train: np.ndarray, domains: np.ndarray, sections: np.ndarray,
                others: list[np.ndarray], seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """One view's out-of-fold scores of the training clips and its scores of ``others`` under mixtures of all of them."""
    def values(mixture, standardised):
        nll = mixture.nll(standardised)
        if rule.transform == "nll":
            return nll, nll
        return nll, np.sqrt(np.maximum(nll - np.min(mixture.nll(mixture.means)), 0.0))

    def fitted(rows):
        mean, variance = train[rows].mean(axis=0), np.maximum(train[rows].var(axis=0), 1e-6)
        groups, summary = mixtures.fit_group_mixtures((train[rows] - mean) / np.sqrt(variance), domains[rows],
                                                      sections[rows], COMPONENTS, COVARIANCE_REG, seed)
        return (lambda x: (x - mean) / np.sqrt(variance)), groups, summary

    count = len(train)
    fold = np.empty(count, dtype=int)
    fold[np.random.default_rng(seed).permutation(count)] = np.arange(count) % FOLDS
    nll, value = {}, {}
    with target_kernels(rule.kernel):
        for f in range(FOLDS):
            standardise, groups, _ = fitted(fold != f)
            for g, mixture in groups.items():
                raw, kept = values(mixture, standardise(train[fold == f]))
                nll.setdefault(g, np.full(count, np.nan))[fold == f] = raw
                value.setdefault(g, np.full(count, np.nan))[fold == f] = kept
        standardise, groups, summary = fitted(np.ones(count, dtype=bool))
    own_group = mixtures.group_of(sections, domains)
    stats, scales = {}, {}
    owns = {g: v[(own_group == g) & np.isfinite(v)] for g, v in value.items()}
    owns = {g: v for g, v in owns.items() if v.size >= 3}
    targets = [v for g, v in owns.items() if g.endswith("/target")]
    pooled_var, pooled_freedom = pooled_variance(targets) if targets else (0.0, 0)
    pooled_std = float(np.sqrt(pooled_var))

    def target_spread(g: str, own: np.ndarray) -> tuple[float, float]:
        """A condition's spread and its tolerance widening, for ``own`` clips of it."""
        if rule.target_spread == "own" or not g.endswith("/target") or pooled_freedom < 1:
            return float(own.std(ddof=1)), prediction_scale(own.size, QUANTILE, rule.confidence)
        if rule.target_spread == "pooled":
            return pooled_std, prediction_scale(own.size, QUANTILE, rule.confidence, freedom=pooled_freedom)
        return max(float(own.std(ddof=1)), pooled_std), prediction_scale(own.size, QUANTILE, rule.confidence)

    for g, v in value.items():
        own = owns.get(g)
        if own is None:
            continue
        spread, scales[g] = target_spread(g, own)
        section = g.split("/")[0]
        if rule.simulate and g.endswith("/target") and g in groups and "target_bandwidth" in summary[section]:
            base = groups[g].precisions_cholesky[0] * np.sqrt(summary[section]["target_bandwidth"])
            source = standardise(train[(sections == section) & (domains != "target")])
            scales[g] = max(scales[g], source_simulated_scale(source, base, own.size, seed, rule.confidence))
        stats[g] = (float(own.mean()), spread * scales[g])
    left_out = {g: v.copy() for g, v in value.items()}
    for g, (mean, std) in stats.items():  # each clip standardised by its condition's other clips
        mine = np.flatnonzero((own_group == g) & np.isfinite(value[g]))
        widen = scales[g] * prediction_scale(len(mine) - 1, QUANTILE, rule.confidence) / prediction_scale(
            len(mine), QUANTILE, rule.confidence)
        for i in mine:
            rest = value[g][mine[mine != i]]
            rest_spread, _ = target_spread(g, rest)
            left_out[g][i] = mean + (value[g][i] - rest.mean()) / max(rest_spread * widen, 1e-12) * std

    def finite(by_group):
        return {g: np.where(np.isfinite(by_group[g]), by_group[g], np.inf) for g in stats}

    scored = [{g: values(groups[g], standardise(x)) for g in stats} for x in others]
    return (judged(rule, finite(nll), stats, finite(left_out)),
            [judged(rule, {g: s[g][0] for g in stats}, stats, {g: s[g][1] for g in stats}) for s in scored])


def fused(rule: Rule, views: list, domains: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """The threshold and the fused scores of each evaluated set."""
    if rule.threshold == "empirical":
        def standard(oof, x):
            return (x - oof.mean()) / oof.std(ddof=1)
        oof = np.max([standard(o, o) for o, _ in views], axis=0)
        threshold = quantile_threshold(oof, QUANTILE, groups=domains)["value"]
        sets = [np.max([standard(o, e[k]) for o, e in views], axis=0) for k in range(len(views[0][1]))]
    else:
        threshold = fused_prediction_threshold(np.stack([o for o, _ in views], axis=1), "max", QUANTILE)["value"]
        sets = [np.max([e[k] for _, e in views], axis=0) for k in range(len(views[0][1]))]
    return threshold, sets


@dataclass
class Clips:
    """One set of clips of a type: per view, its GWRP-pooled log-mel vectors ``(clips, bands)``,
    and each clip's section, domain and whether it is an anomaly."""

    views: list[np.ndarray]
    sections: np.ndarray
    domains: np.ndarray
    anomalous: np.ndarray


def load_clips(seed: str, machine: str, args, sets: tuple[str, ...]) -> tuple[list[float], dict[str, Clips]]:
    """The saved default GMM's decays, and ``sets`` ("train", "test", "fresh") of one type and seed
    pooled with them (the seed's feature cache; the fresh normals' own)."""
    from asdkeras.data.layout import scan_split
    from asdkeras.models.gmm import pooling_model
    from asdkeras.models.inference import predict

    data, fresh_dir = args.data.format(seed=seed), args.fresh_dir.format(seed=seed)
    detector = Detector.load(os.path.join(args.models_dir.format(seed=seed), machine, "gmm"))
    decays = detector.info["pooling"]["decays"]
    frontend = detector.frontend
    pooler = pooling_model(*frontend.input_shape, decays)
    clips = {}
    for name in sets:
        root, split = (fresh_dir, "test") if name == "fresh" else (data, name)
        records = scan_split(root, machine, split)
        features = frontend.cache(os.path.join(root, "cache")).ensure([r.path for r in records])
        vectors = np.asarray(predict(pooler, frontend.dataset(features)), np.float64)
        bands = vectors.shape[1] // len(decays)
        clips[name] = Clips([vectors[:, i * bands:(i + 1) * bands] for i in range(len(decays))],
                            np.array([r.section for r in records]), np.array([r.domain for r in records]),
                            np.array([r.label == "anomaly" for r in records]))
    return decays, clips


def judge(seed: str, machine: str, args) -> dict[str, dict]:
    from sklearn.metrics import roc_auc_score

    decays, clips = load_clips(seed, machine, args, ("train", "test", "fresh"))
    train, test, fresh = clips["train"], clips["test"], clips["fresh"]
    results = {}
    for name, rule in RULES.items():
        views = [view_scores(rule, train.views[i], train.domains, train.sections, [test.views[i], fresh.views[i]])
                 for i in range(len(decays))]
        threshold, (test_scores, fresh_scores) = fused(rule, views, train.domains)
        per_domain = {}
        for domain in ("source", "target"):
            rows = []
            for section in sorted(set(test.sections)):
                here = (test.sections == section) & (test.domains == domain)
                rows.append((float(np.mean(fresh_scores[(fresh.sections == section) & (fresh.domains == domain)]
                                           > threshold)),
                             float(np.mean(test_scores[here & test.anomalous] > threshold)),
                             float(roc_auc_score(test.anomalous[here], test_scores[here]))))
            per_domain[domain] = np.array(rows)
        results[name] = per_domain
    return results


def explain(seed: str, machine: str, args) -> None:
    """Per view and target condition of one type: where its fresh normals are judged, and how far
    its training clips' level lies from the one 10 of its own fresh normals would give."""
    from asdkeras.detectors.gmm import group_out_of_fold_scores

    decays, clips = load_clips(seed, machine, args, ("train", "fresh"))
    sections, domains = clips["train"].sections, clips["train"].domains
    fresh_sections, fresh_domains = clips["fresh"].sections, clips["fresh"].domains
    level = scipy.stats.norm.ppf(QUANTILE)
    for decay, vectors, fresh_vectors in zip(decays, clips["train"].views, clips["fresh"].views):
        _, _, stats, _ = group_out_of_fold_scores(vectors, domains, sections, COMPONENTS, COVARIANCE_REG, 0,
                                                  quantile=QUANTILE, extra={}, confidence=CONFIDENCE)
        mean, variance = vectors.mean(axis=0), np.maximum(vectors.var(axis=0), 1e-6)
        standard, fresh_standard = ((x - mean) / np.sqrt(variance) for x in (vectors, fresh_vectors))
        groups, summary = mixtures.fit_group_mixtures(standard, domains, sections, COMPONENTS, COVARIANCE_REG, 0)
        nll = {g: groups[g].nll(fresh_standard) for g in stats}
        names = np.array(list(nll))
        assigned = names[np.argmin(np.stack([nll[g] for g in names], axis=1), axis=1)]
        scores = assigned_group_score(nll, stats)
        for section in sorted(set(sections)):
            group = f"{section}/target"
            if group not in stats:
                continue
            mine = (fresh_sections == section) & (fresh_domains == "target")
            own = (nll[group][mine] - stats[group][0]) / stats[group][1]
            where = ", ".join(f"{g} {n}" for g, n in zip(*np.unique(assigned[mine], return_counts=True)))
            base = groups[group].precisions_cholesky[0] * np.sqrt(summary[section]["target_bandwidth"])
            clips = standard[(sections == section) & (domains == "target")]
            subsets = levels_of_subsets(fresh_standard[mine], base, len(clips), 0)
            print(f"{seed} {machine} r = {decay:g} {group}: {mine.sum()} fresh normals judged in {where}; flagged "
                  f"{np.mean(scores[mine] > level):.0%} as judged, {np.mean(own > level):.0%} in their own condition; "
                  f"0.9 quantile of new normals in leave-one-out spreads: {level_of(clips, fresh_standard[mine], base):.2f} "
                  f"from the training clips, median {np.median(subsets):.2f} (upper quartile "
                  f"{np.quantile(subsets, 0.75):.2f}) from {len(subsets)} subsets of as many fresh normals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", required=True, help="comma-separated seeds: {seed} in the folder patterns")
    parser.add_argument("--machines", default="fan,gearbox,bearing,slider,valve,ToyCar,ToyTrain")
    parser.add_argument("--data", required=True, help="a seed's synthetic dataset, e.g. /tmp/seed{seed}")
    parser.add_argument("--models-dir", required=True, help="its models: <models-dir>/<machine>/gmm")
    parser.add_argument("--fresh-dir", required=True, help="its fresh normals (normal_rates.py --fresh-dir)")
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated rules to replay (default: all)")
    parser.add_argument("--explain", action="store_true",
                        help="per view and target condition: where fresh normals are judged, and the training "
                             "clips' level against subsets of fresh normals (no rules compared)")
    args = parser.parse_args()
    for name in set(RULES) - set(args.rules.split(",")):
        del RULES[name]
    if args.explain:
        for seed in args.seeds.split(","):
            for machine in args.machines.split(","):
                explain(seed, machine, args)
        return
    runs = {}
    for seed in args.seeds.split(","):
        for machine in args.machines.split(","):
            runs[seed, machine] = judge(seed, machine, args)
            line = "  ".join(f"{name} {r['target'][:, 0].round(2).tolist()}" for name, r in runs[seed, machine].items())
            print(f"{seed} {machine} target flagged: {line}", flush=True)
    print()
    print("| rule | flagged source (mean; > 25 %; > 40 %) | flagged target (mean; > 25 %; > 40 %) "
          "| recall source / target | AUC source / target |")
    print("|---|---|---|---|---|")
    for name in RULES:
        cells = []
        for column in (0, 1, 2):
            for domain in ("source", "target"):
                values = np.concatenate([r[name][domain][:, column] for r in runs.values()])
                cells.append((values.mean(), int(np.sum(values > 0.25)), int(np.sum(values > 0.40)), values.size))
        (fs, ft, rs, rt, as_, at) = cells
        print(f"| {name} | {fs[0]:.1%}; {fs[1]}; {fs[2]} of {fs[3]} | {ft[0]:.1%}; {ft[1]}; {ft[2]} of {ft[3]} "
              f"| {rs[0]:.1%} / {rt[0]:.1%} | {as_[0]:.3f} / {at[0]:.3f} |")


if __name__ == "__main__":
    main()
