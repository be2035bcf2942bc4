"""Time-pooled log-mel levels with Gaussian mixtures (TWFR-GMM style), a steady and a transient view.

The kind ``gmm``: its configuration, its trainer (the pooling views chosen by the pseudo-anomaly
battery, thresholds from out-of-fold scores) and everything else the project needs to know
about it (registered at the end). The pooling and mixture layers are in :mod:`asdkeras.models.gmm`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from asdkeras.data.layout import ClipRecord
from asdkeras.detectors import DetectorKind, register
from asdkeras.detectors.config import MIN_HELD_OUT, TARGET_CLIPS, FitConfig, Option, setting
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.feature_settings import LogMelConfig
from asdkeras.names import CONFIG_FILE
from asdkeras.progress import Progress, no_progress

if TYPE_CHECKING:
    from asdkeras.detector import Detector


@dataclass(kw_only=True)
class GmmConfig(FitConfig):
    """Everything a pooled-GMM fit depends on; saved as ``config.json`` beside the model.

    ``pooling_decay``: "battery" (default: a steady view, the band mean, and a transient view,
    a max-like pooling, each with its own mixture, fused at score level; which max-like pooling
    is chosen by the pseudo-anomaly battery of :mod:`asdkeras.battery`, see
    :data:`asdkeras.models.gmm.VIEW_CANDIDATES`), one decay r in [0, 1] (1 = the band mean,
    0 = the max), "fuse" (the mean and r = 0.5 side by side in one vector), or "paper"
    (TWFR-GMM's per-type decay and component count, chosen there on labelled DCASE 2022 dev
    data). ``components`` per section's source GMM (None: 2, or the paper's with "paper");
    ``covariance_reg`` is added to covariance diagonals in standardised units.
    """

    kind: ClassVar[str] = "gmm"
    calibration_trains: ClassVar[bool] = True  # refitting costs seconds: a new condition's clips become components
    pooling_decay: str | float = setting("battery", Option(
        "battery (a steady view, the band mean, and a transient view, max-like, fused at score level, the max-like "
        "pooling chosen by the pseudo-anomaly battery); a GWRP decay r in [0, 1] (1 = mean, 0 = max); fuse (mean and "
        "r = 0.5 side by side in one vector); or paper (TWFR-GMM's per-type value)"))
    components: int | None = setting(None, Option("mixture components per section", int, minimum=1,
                                                   none="2; with --pooling-decay paper: per type"))
    covariance_reg: float = setting(0.1, Option("covariance regularisation in standardised units", float, minimum=0,
                                                open_bounds=True))
    target_clips: int | None = setting(3000, TARGET_CLIPS)
    features: LogMelConfig = field(default_factory=LogMelConfig)

    def normal_cap(self) -> int | None:
        return self.target_clips

    def pooling(self) -> tuple[tuple[float, ...] | None, int, str]:
        """The decays (None: chosen by the battery), the component count and the reason, from ``pooling_decay``."""
        from asdkeras.models.gmm import FUSED_DECAYS, PAPER_SETTINGS

        if self.pooling_decay == "battery":
            return None, self.components or 2, ("the default: a steady and a transient view fused at score level, "
                                                "the transient view's pooling chosen by the pseudo-anomaly battery")
        if self.pooling_decay == "fuse":
            return FUSED_DECAYS, self.components or 2, ("fused: band mean (r = 1) and a max-like pooling (r = 0.5) "
                                                        "side by side, so stationary and transient changes both count")
        if self.pooling_decay == "paper":
            if self.machine not in PAPER_SETTINGS:
                raise AsdError(f"--pooling-decay paper knows {', '.join(PAPER_SETTINGS)}, not {self.machine}; "
                               f"pass a decay in [0, 1], fuse or battery")
            decay, components = PAPER_SETTINGS[self.machine]
            return (decay,), self.components or components, (f"TWFR-GMM's published setting for {self.machine} "
                                                             f"(chosen there on labelled dev data)")
        try:
            decay = float(self.pooling_decay)
        except (TypeError, ValueError):
            decay = -1.0
        if not 0 <= decay <= 1:
            raise AsdError(f"--pooling-decay {self.pooling_decay}: use battery, fuse, paper or a decay in [0, 1] "
                           f"(1 = mean, 0 = max)")
        return (decay,), self.components or 2, "given by the user"


def fit_gmm(config: GmmConfig, progress: Progress = no_progress, verbose: int = 0,
            skipped: SkippedFiles | None = None) -> Detector:
    """Pool, fit the Gaussian mixture(s), threshold on held-out normals and save the detector."""
    import keras

    from asdkeras.fit import cached_features, note_held_out, require_training_clips
    from asdkeras.frontend import LogMelFrontend
    from asdkeras.models.gmm import gmm_scoring_model, pooling_model
    from asdkeras.models.inference import predict

    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    decays, components, reason = config.pooling()
    train_records, val_records = config.normal_split()
    frontend = LogMelFrontend(config.features, channel=config.channel)
    cache = frontend.cache(config.cache_dir)
    (train_records, train_paths), (val_records, val_paths) = cached_features(
        cache, [train_records, val_records], progress, skipped)
    require_training_clips(train_paths, config.machine)
    note_held_out(val_paths, train_paths, config, "the threshold comes from out-of-fold scores of all of them")
    if decays is None:
        return _fit_gmm_views(config, frontend, train_records, train_paths, val_records, val_paths, components,
                              reason, started, SkippedFiles.or_strict(skipped))

    pooler = pooling_model(*frontend.input_shape, decays)
    pooled = np.asarray(predict(pooler, frontend.dataset(train_paths)), np.float64)
    mean, variance, (weights, means, chol, mixture) = _standardised_mixture(
        pooled, np.array([r.domain for r in train_records]), np.array([r.section for r in train_records]),
        components, config.covariance_reg, config.seed)
    scoring = gmm_scoring_model(*frontend.input_shape, decays, mean, variance, weights, means, chol)
    if len(val_paths) >= MIN_HELD_OUT:
        thresholds, normal_scores = _held_out_threshold(scoring, frontend, val_paths, config.threshold_quantile,
                                                        [r.domain for r in val_records])
    else:  # too few held out: refits are cheap, so every clip is scored by a mixture fitted without it
        records = train_records + val_records
        every = pooled if not val_paths else np.r_[pooled, predict(pooler, frontend.dataset(val_paths))]
        scores, folds = gmm_out_of_fold_scores(every, np.array([r.domain for r in records]),
                                               np.array([r.section for r in records]), components,
                                               config.covariance_reg, config.seed)
        thresholds, normal_scores = _out_of_fold_threshold(scores, folds, records, config.threshold_quantile)
    return _save_gmm(config, frontend, scoring, thresholds, normal_scores,
                     {"decays": list(decays), "rule": config.pooling_decay, "reason": reason,
                      "views": _views_of(decays)},
                     {"components_per_section": components, "covariance_reg": config.covariance_reg,
                      "sections": mixture, "total_components": int(len(weights))},
                     len(train_paths), len(val_paths), started)


def _views_of(decays) -> list[str]:
    """Which fault families a pooling keeps: "steady" (a mean-like decay) and/or "transient" (max-like)."""
    return [view for view, keeps in (("steady", any(d >= 0.9 for d in decays)),
                                     ("transient", any(d <= 0.5 for d in decays))) if keeps]


def _held_out_threshold(scoring, frontend, held_out: list[str], quantile: float,
                        domains: list[str]) -> tuple[dict, dict]:
    """The quantile threshold and the normal-score statistics from the held-out normals' scores
    (cache paths ``held_out``; both domains weigh equally)."""
    from asdkeras.models.inference import predict
    from asdkeras.scoring import quantile_threshold, score_statistics

    what = "held-out training-normal clip scores"
    scores = np.asarray(predict(scoring, frontend.dataset(held_out)), np.float64).reshape(-1)
    return ({"quantile": quantile_threshold(scores, quantile, what, domains)}, {**score_statistics(scores), "clips": what})


def _out_of_fold_threshold(scores: np.ndarray, folds: int, records: list[ClipRecord], quantile: float,
                           why: str = "too few held out: ") -> tuple[dict, dict]:
    from asdkeras.scoring import quantile_threshold, score_statistics

    what = (f"out-of-fold scores of all {len(records)} training-normal clips ({why}each scored by "
            f"a mixture fitted without it, {folds} folds)")
    return ({"quantile": quantile_threshold(scores, quantile, what, [r.domain for r in records])},
            {**score_statistics(scores), "clips": what})


def _views_threshold(scores: np.ndarray, folds: int, records: list[ClipRecord], quantile: float,
                     confidence: float) -> tuple[dict, dict]:
    """The threshold of views judged per condition and fused by their max: the max's ``quantile`` for a new
    normal clip, from the views' correlation (:func:`asdkeras.scoring.fused_prediction_threshold`).

    ``scores``: out-of-fold view scores ``(clips, views)`` of all training normals. Each view's
    conditions were widened so that a new normal clip keeps below ``Phi^-1(quantile)`` with
    probability ``confidence``; an empirical quantile of these scores would take that margin back
    (10 of 105 synthetic target conditions flagged more than 25 % of fresh normals with it, 4 with
    this rule at 0.9 confidence: BENCHMARKS.md, "The GMM keeps its margin").
    """
    from asdkeras.scoring import combine_members, fused_prediction_threshold, score_statistics

    what = (f"out-of-fold scores of all {len(records)} training-normal clips (each scored by a mixture fitted "
            f"without it, {folds} folds), each view judged per condition")
    domains = [r.domain for r in records]
    threshold = fused_prediction_threshold(scores, "max", quantile, what, domains, columns="views")
    threshold["confidence"] = confidence  # each view's conditions were widened for it
    return {"quantile": threshold}, {**score_statistics(combine_members(scores, "max")), "clips": what}


def _save_gmm(config: GmmConfig, frontend, scoring, thresholds: dict, normal_scores: dict, pooling: dict,
              mixture: dict, train_count: int, val_count: int, started: float, **more) -> Detector:
    from asdkeras.detector import Detector
    from asdkeras.fit import split_files

    detector = Detector(
        kind=config.kind, machine=config.machine, frontend=frontend, model=scoring,
        score_units="negative log-likelihood of the clip's GWRP-pooled, standardised log-mel levels"
                    + (" per view, judged in the clip's operating condition, combined by their max"
                       if len(pooling.get("views_fused", [])) > 1 else ""),
        thresholds=thresholds, threshold_rule="quantile", normal_scores=normal_scores,
        info={"outlier": None, "pooling": pooling, "mixture": mixture,
              "clips": {"train_normal": train_count, "val_normal": val_count, "train_outlier": 0, "val_outlier": 0},
              "epochs_run": 0, **more, "fit_seconds": round(time.perf_counter() - started, 1)})
    detector.save(config.folder(), {CONFIG_FILE: asdict(config), **split_files(config)})
    return detector


def _fit_gmm_views(config: GmmConfig, frontend, train_records: list[ClipRecord], train_paths: list[str],
                   val_records: list[ClipRecord], val_paths: list[str], components: int, reason: str,
                   started: float, skipped: SkippedFiles) -> Detector:
    """The default GMM: one mixture per pooling view, views fused at score level, the fusion chosen by the battery.

    Every candidate of :data:`~asdkeras.models.gmm.VIEW_CANDIDATES` and every single pooling of
    :data:`~asdkeras.models.gmm.RECORDED_DECAYS` is scored out-of-fold on all training normals
    and on the battery's altered copies of up to :data:`asdkeras.battery.MAX_NORMALS` of them
    (each copy by the mixture of its clip's fold, so no score comes from a mixture that saw the
    clip); the candidate with the best battery figure is fitted on the training part and saved,
    every figure recorded. Each view holds a mixture per operating condition, each section's
    source and target clips (:func:`~asdkeras.models.mixtures.fit_group_mixtures`); each group is
    standardised by the out-of-fold scores of its own training normals, which hold every target
    clip where a held-out part holds one or two, and widened for a new clip
    (``threshold_confidence``). The views stay in those units, fused by their max, and the
    threshold is that max's quantile for a new normal clip (:func:`_views_threshold`).
    """
    import tensorflow as tf

    from asdkeras import battery
    from asdkeras.data.layout import random_subset
    from asdkeras.models.gmm import (RECORDED_DECAYS, VIEW_CANDIDATES, PoolingView, decay_tag, pooling_model,
                                     views_scoring_model)
    from asdkeras.models.mixtures import fit_group_mixtures
    from asdkeras.models.inference import predict

    decays = sorted({d for pair in VIEW_CANDIDATES.values() for d in pair} | set(RECORDED_DECAYS), reverse=True)
    bands = config.features.n_mels
    pooler = pooling_model(*frontend.input_shape, decays)

    def by_decay(pooled: np.ndarray) -> dict[float, np.ndarray]:
        pooled = np.asarray(pooled, np.float64)
        return {d: pooled[:, i * bands:(i + 1) * bands] for i, d in enumerate(decays)}

    def pool_waveforms(clips: np.ndarray) -> dict[float, np.ndarray]:
        data = tf.data.Dataset.from_tensor_slices(clips).batch(8).map(frontend.from_waveforms)
        return by_decay(predict(pooler, data))

    train_raw = predict(pooler, frontend.dataset(train_paths))
    val_raw = predict(pooler, frontend.dataset(val_paths)) if val_paths else train_raw[:0]
    records = train_records + val_records
    every_pooled = by_decay(np.r_[train_raw, val_raw])
    # the battery alters up to MAX_NORMALS training normals (decoded again, as the front-end reads them)
    subset = random_subset(list(range(len(records))), battery.MAX_NORMALS, np.random.default_rng(config.seed))
    readable, normals = battery.decode_readable([records[i].path for i in subset], config.channel, skipped)
    altered_of = np.array([i for i in subset if records[i].path in set(readable)], dtype=int)
    others = battery.other_machine_records(config.data_dir, config.subset, config.machine,
                                           per_type=battery.OTHER_CLIPS_PER_TYPE, seed=config.seed)
    _, other_clips = battery.decode_readable([r.path for r in others], config.channel, skipped)
    altered_pooled = ({name: pool_waveforms(clips) for name, clips in
                       battery.altered_clips(normals, battery.Context(other_clips), config.seed)}
                      if normals is not None else {})

    # out-of-fold scores of every normal and every altered copy, per pooling
    domains, sections = np.array([r.domain for r in records]), np.array([r.section for r in records])
    normal_oof, altered_oof, group_stats = {}, {}, {}
    for decay in decays:
        normal_oof[decay], altered_oof[decay], group_stats[decay], folds = group_out_of_fold_scores(
            every_pooled[decay], domains, sections, components, config.covariance_reg, config.seed,
            quantile=config.threshold_quantile, confidence=config.threshold_confidence,
            extra={name: (p[decay], altered_of) for name, p in altered_pooled.items()})

    def fused(pair, scores_of) -> np.ndarray:
        """Max over the pair's poolings of their scores, each judged in its operating condition (about (0, 1))."""
        return np.max([scores_of(d) for d in pair], axis=0)

    candidates = recorded = {}
    if altered_pooled:
        candidates = {name: {"decays": list(pair), "views": _views_of(pair),
                             **battery.battery_figures(fused(pair, normal_oof.get),
                                                       {k: fused(pair, lambda d: altered_oof[d][k]) for k in altered_pooled})}
                      for name, pair in VIEW_CANDIDATES.items()}
        recorded = {f"r = {d:g}": {"decays": [d], "views": _views_of((d,)),
                                    **battery.battery_figures(normal_oof[d], altered_oof[d])} for d in RECORDED_DECAYS}
        chosen, why = battery.choose(candidates)
    else:
        chosen, why = next(iter(VIEW_CANDIDATES)), "no clip could be altered: the first candidate"
    pair = VIEW_CANDIDATES[chosen]

    # the chosen views, fitted on the training part (the held-out part stays unseen, for the ensemble);
    # the groups are standardised by the out-of-fold scores of all training normals
    views, mixtures = [], {}
    train_pooled = by_decay(train_raw)
    for decay in pair:
        pooled = train_pooled[decay]
        mean, variance = pooled.mean(axis=0), np.maximum(pooled.var(axis=0), 1e-6)
        group_mixtures, mixtures[decay_tag(decay)] = fit_group_mixtures(
            (pooled - mean) / np.sqrt(variance), domains[:len(train_records)], sections[:len(train_records)],
            components, config.covariance_reg, config.seed)
        # a group with too few clips to standardise out of fold is left out, as it was in the battery
        kept = [g for g in group_mixtures if g in group_stats[decay]]
        left_out = set(group_mixtures) - set(kept)
        # kept in its conditions' units, so the threshold keeps the tolerance margin the groups were widened for
        views.append(PoolingView(decay, mean, variance, {g: group_mixtures[g] for g in kept},
                                 {g: group_stats[decay][g] for g in kept}))
    scoring = views_scoring_model(*frontend.input_shape, views, "max")
    thresholds, normal_record = _views_threshold(np.stack([normal_oof[d] for d in pair], axis=1), folds, records,
                                                 config.threshold_quantile, config.threshold_confidence)
    document = {"rule": battery.RULE, "kinds": battery.describe_battery(), "normals": int(len(altered_of)),
                "other_machine_clips": 0 if other_clips is None else int(len(other_clips)),
                "scored": f"out-of-fold ({folds} folds) over all {len(records)} training normals",
                "candidates": candidates, "single_poolings": recorded, "chosen": chosen, "reason": why}
    return _save_gmm(config, frontend, scoring, thresholds, normal_record,
                     {"decays": list(pair), "rule": "battery", "reason": f"{reason}: {chosen} ({why})",
                      "views": _views_of(pair), "views_fused": [decay_tag(d) for d in pair], "combine": "max"},
                     {"components_per_section": components, "covariance_reg": config.covariance_reg,
                      "sections": mixtures, "groups_scored_apart": sorted(views[0].mixtures),
                      "groups_left_out": sorted(left_out),
                      "group_statistics": {decay_tag(v.decay): {g: list(st) for g, st in v.group_stats.items()}
                                           for v in views},
                      "total_components": int(sum(len(m.weights) for v in views for m in v.mixtures.values()))},
                     len(train_paths), len(val_paths), started, battery=document, judged_per_condition=True)


def gmm_out_of_fold_scores(pooled: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                           covariance_reg: float, seed: int, folds: int = 5) -> tuple[np.ndarray, int]:
    """Each clip's score under a mixture fitted (standardisation included) without its fold.

    For the threshold when too few clips can be held out: the scores of clips a mixture was
    fitted on run low (each target clip is a component of its own), so a threshold on them flags
    nearly every new normal clip. Returns the scores and the number of folds used.
    """
    from asdkeras.models.mixtures import mixture_nll

    folds = max(2, min(folds, len(pooled)))
    fold = np.empty(len(pooled), dtype=int)
    fold[np.random.default_rng(seed).permutation(len(pooled))] = np.arange(len(pooled)) % folds
    scores = np.empty(len(pooled))
    for f in range(folds):
        fit = fold != f
        mean, variance, (weights, means, chol, _) = _standardised_mixture(
            pooled[fit], domains[fit], sections[fit], components, covariance_reg, seed)
        scores[~fit] = mixture_nll((pooled[~fit] - mean) / np.sqrt(variance), weights, means, chol)
    return scores, folds


def group_out_of_fold_scores(pooled: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                             covariance_reg: float, seed: int, quantile: float, extra: dict, folds: int = 5,
                             confidence: float | None = None):
    """Out-of-fold view scores of every clip under :func:`~asdkeras.models.mixtures.fit_group_mixtures`.

    Per fold, the mixtures (standardisation included) are fitted without the fold; each clip of
    the fold gets its NLL under every group's mixture, and so does every ``extra`` vector
    (``{name: (vectors, owners)}``, each derived from clip ``owners[i]``: the battery's altered
    copies). Each group's NLLs are then standardised by the out-of-fold NLLs of the group's own
    clips, and a clip's score is its standardised NLL in its most likely group
    (:func:`~asdkeras.models.gmm.assigned_group_score`).

    A target group has about 10 clips, so its mean and spread are uncertain: the spread is
    widened by :func:`~asdkeras.models.condition_statistics.prediction_scale` (a Student-t prediction for
    a new clip at ``quantile``, as the networks' conditions are), which puts every group's
    ``quantile`` of new normals at the same level, and each clip is standardised in its own group
    by the other clips of that group (leave one out, widened for one clip fewer), so the
    threshold is fitted on scores distributed as a new clip's are. Standardised by statistics
    that included it, 10 clips' scores never exceed 2.85 and their 0.9 quantile lies low: one
    target section flagged 37 % of 60 fresh normals (synthetic fan, seed 41). With ``confidence``
    the widening is a tolerance bound instead (every group keeps at least ``quantile`` of its new
    normals with that probability).
    A group with fewer than 3 scored clips is not standardised, and not used.

    Returns
    -------
    scores, extra_scores, group_stats, folds
        Scores of the clips, ``{name: scores}`` of the extras, group -> (mean, widened std) and the fold count.
    """
    from asdkeras.models.condition_statistics import prediction_scale
    from asdkeras.models.gmm import assigned_group_score
    from asdkeras.models.mixtures import fit_group_mixtures, group_of

    folds = max(2, min(folds, len(pooled)))
    fold = np.empty(len(pooled), dtype=int)
    fold[np.random.default_rng(seed).permutation(len(pooled))] = np.arange(len(pooled)) % folds
    nll: dict[str, np.ndarray] = {}
    extra_nll: dict[str, dict[str, np.ndarray]] = {name: {} for name in extra}
    for f in range(folds):
        fit = fold != f
        mean, variance = pooled[fit].mean(axis=0), np.maximum(pooled[fit].var(axis=0), 1e-6)
        mixtures, _ = fit_group_mixtures((pooled[fit] - mean) / np.sqrt(variance), domains[fit], sections[fit],
                                         components, covariance_reg, seed)
        for group, mixture in mixtures.items():
            nll.setdefault(group, np.full(len(pooled), np.nan))[~fit] = mixture.nll((pooled[~fit] - mean) / np.sqrt(variance))
            for name, (vectors, owners) in extra.items():
                mine = fold[owners] == f
                scores = extra_nll[name].setdefault(group, np.full(len(vectors), np.nan))
                if mine.any():
                    scores[mine] = mixture.nll((vectors[mine] - mean) / np.sqrt(variance))
    groups = group_of(sections, domains)
    own = {g: v[groups == g] for g, v in nll.items()}
    stats = {g: (float(np.nanmean(v)),
                 float(np.nanstd(v, ddof=1)) * prediction_scale(int(np.isfinite(v).sum()), quantile, confidence))
             for g, v in own.items() if np.isfinite(v).sum() >= 3}

    def finite(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # not scored in a fold: not typical there
        return {g: np.where(np.isfinite(values[g]), values[g], np.inf) for g in stats}

    scored = finite(nll)
    return (assigned_group_score(scored, stats, _left_out_values(scored, groups, stats, quantile, confidence)),
            {name: assigned_group_score(finite(v), stats) for name, v in extra_nll.items()}, stats, folds)


def _left_out_values(nll: dict[str, np.ndarray], groups: np.ndarray, stats: dict, quantile: float,
                     confidence: float | None) -> dict:
    """Per group, NLLs to standardise by ``stats`` such that each clip of the group comes out
    standardised by the group's other clips (:func:`group_out_of_fold_scores`)."""
    from asdkeras.models.condition_statistics import prediction_scale

    values = {g: v.copy() for g, v in nll.items()}
    for g, (mean, std) in stats.items():
        mine = np.flatnonzero((groups == g) & np.isfinite(nll[g]))
        widen = prediction_scale(len(mine) - 1, quantile, confidence)
        for i in mine:
            rest = nll[g][mine[mine != i]]
            z = (nll[g][i] - rest.mean()) / max(rest.std(ddof=1) * widen, 1e-12)
            values[g][i] = mean + z * std
    return values


def _standardised_mixture(pooled: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                          covariance_reg: float, seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Per-dimension mean and variance of pooled vectors, and :func:`fit_mixture` on them standardised."""
    from asdkeras.models.mixtures import fit_mixture

    mean, variance = pooled.mean(axis=0), np.maximum(pooled.var(axis=0), 1e-6)
    return mean, variance, fit_mixture((pooled - mean) / np.sqrt(variance), domains, sections, components,
                                       covariance_reg, seed)


KIND = register(DetectorKind(
    name="gmm", title="Pooled GMM", colour="#2ca02c",
    description="time-pooled log-mel levels with a Gaussian mixture", config=GmmConfig, fit=fit_gmm,
    layer_modules=("asdkeras.models.gmm",), float_tail=("/gmm_nll",),
    # first when the battery cannot tell members apart: the simplest member (no gradient training),
    # and the better one wherever labels exist: both real splits (valve, its max pooling, 0.938
    # against the AE's 0.49, DESIGN.md; MIMII fan 0.890 against 0.775-0.800, BENCHMARKS.md) and
    # 29 of 35 synthetic types x seeds against the AE ("The battery's tie margin over five seeds")
    tie_rank=0))
