"""Training machinery every trainer shares, and fitting a detector of any kind by name.

The kinds themselves (configuration, trainer) live in :mod:`asdkeras.detectors`; this module
holds what their trainers have in common (cached features, judging scores per operating
condition, the derived-split record, notes on held-out clips) and the registry-driven entry
points :func:`make_config`, :func:`load_config` and :func:`fit_detector`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from asdkeras import detectors
from asdkeras.data.layout import ClipRecord, machine_dir
from asdkeras.data.layouts import DERIVED_SPLIT_RULE, detect_layout
from asdkeras.detector import Detector, read_detector_json
from asdkeras.detectors.config import MIN_HELD_OUT, MIN_HELD_OUT_PER_CONDITION, FitConfig
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.names import CONFIG_FILE, SPLIT_FILE, VARIANTS, saved_variants
from asdkeras.progress import Progress, no_progress
from asdkeras.scoring import combine_members, fused_prediction_threshold, prediction_threshold, score_statistics


def cached_features(cache, groups: list[list[ClipRecord]], progress: Progress,
                    skipped: SkippedFiles | None) -> list[tuple[list[ClipRecord], list[str]]]:
    """Per group of records: those whose features are cached, and their cache paths.

    The groups are cached in one pass (one progress bar, one conversion note); unreadable files
    go to ``skipped``.
    """
    skipped = SkippedFiles.or_strict(skipped)
    records = [r for group in groups for r in group]
    paths = cache.ensure([r.path for r in records], progress, skipped)
    cached = dict(zip([r.path for r in records if r.path not in skipped], paths))
    return [([r for r in group if r.path in cached], [cached[r.path] for r in group if r.path in cached])
            for group in groups]


def history_dict(*histories) -> dict:
    merged: dict = {}
    for phase, history in enumerate(histories, start=1):
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
        merged.setdefault("phase", []).extend([phase] * len(history.history.get("loss", [])))
    return merged


@dataclass
class JudgedScores:
    """A network's scoring model judged per operating condition, with its threshold (see :func:`judge_per_condition`)."""

    model: object
    conditions: list
    """One :class:`~asdkeras.models.conditions.Conditions` per view of the network (most have one):
    the same groups and mixtures, each view's own score statistics."""
    thresholds: dict
    normal_scores: dict
    descriptors: np.ndarray
    raw: np.ndarray
    """The network's raw scores ``(clips, views)`` of the training normals, those it trained on first."""

    def info(self) -> dict:
        from asdkeras.models.conditions import describe

        judged = {"judged_per_condition": len(self.conditions[0].score_stats) > 1}
        if len(self.conditions) == 1:
            return {**judged, "conditions": describe(self.conditions[0])}
        return {**judged, "conditions": [describe(c) for c in self.conditions]}


def judge_per_condition(raw_model, descriptor, frontend, trained: tuple[list, list], held_out: tuple[list, list],
                        quantile: float, seed: int, like: JudgedScores | None = None,
                        confidence: float | None = None) -> JudgedScores:
    """The raw scoring model judged in each clip's operating condition, and the threshold on its scores.

    Parameters
    ----------
    raw_model : keras.Model
        Features -> the network's raw clip score, or several (its views: one output each).
    descriptor : keras.layers.Layer
        Features -> clip descriptor (see :func:`asdkeras.models.conditions.conditioned_scoring_model`).
    frontend : LogMelFrontend or ImageFrontend
        The model's front-end.
    trained, held_out : (records, cache paths)
        Training normals the network trained on, and those it did not.
    quantile : float
        Intended share of normal clips kept as normal.
    like : JudgedScores, optional
        Reuse its descriptors and condition mixtures (the int8 twin of the same network); only
        the score statistics are the new network's.
    confidence : float, optional
        Probability that each condition keeps at least ``quantile`` of its new normals (a
        tolerance threshold, :func:`asdkeras.models.condition_statistics.prediction_scale`).

    Each condition's normal scores are measured on all its training normals, those the network
    trained on corrected by the held-out ones (:func:`asdkeras.models.condition_statistics.condition_statistics`),
    so the threshold is the normal quantile (:func:`asdkeras.scoring.prediction_threshold`);
    ``flagged_share_by_group`` is the share of held-out normals it flags per domain. With fewer
    than :data:`MIN_HELD_OUT_PER_CONDITION` held out in both domains, nothing is corrected, and the
    record says so. Several views are each judged so, then fused by their maximum, and the threshold
    is that maximum's quantile for views correlated as the held-out normals' judged scores are
    (:func:`asdkeras.scoring.fused_prediction_threshold`).
    """
    from asdkeras.models.condition_statistics import condition_statistics
    from asdkeras.models.conditions import (VIEW_FUSION, Conditions, conditioned_scoring_model, fit_conditions,
                                            raw_scores_and_descriptors, views_matrix)
    from asdkeras.models.inference import predict

    records, paths = trained[0] + held_out[0], trained[1] + held_out[1]
    is_held_out = np.array([False] * len(trained[1]) + [True] * len(held_out[1]))
    sections, domains = [r.section for r in records], [r.domain for r in records]
    if like is None:
        raw, descriptors = raw_scores_and_descriptors(raw_model, descriptor, frontend.dataset(paths))
        mixtures = Conditions(*fit_conditions(descriptors, sections, domains, seed), {}, {})
    else:
        raw = views_matrix(predict(raw_model, frontend.dataset(paths)))
        descriptors, mixtures = like.descriptors, like.conditions[0]
    conditions, scores = [], []
    for view in raw.T:
        stats, summary = condition_statistics(view, sections, domains, is_held_out, MIN_HELD_OUT_PER_CONDITION, quantile,
                                              confidence)
        conditions.append(mixtures.with_score_stats(stats, summary))
        scores.append(conditions[-1].score(descriptors, view))
    corrected = any(c["held_out_clips"] >= MIN_HELD_OUT_PER_CONDITION for c in summary["corrections"].values())
    measured = ("every training normal of its condition, those the network trained on corrected by the held-out ones"
                if corrected else
                f"every training normal ({len(held_out[1])} held out, too few to correct the clips the network trained "
                f"on, so more normals than intended may be flagged)")
    check = is_held_out if is_held_out.sum() >= 2 else np.ones(len(paths), bool)
    scores = np.stack(scores, axis=1)
    if len(conditions) == 1:
        threshold = prediction_threshold(scores[check, 0], np.asarray(domains)[check], quantile, measured, confidence)
    else:
        threshold = fused_prediction_threshold(scores[check], VIEW_FUSION, quantile,
                                               f"held-out normal clips, each view judged per condition ({measured})",
                                               np.asarray(domains)[check], columns="views")
        threshold["confidence"] = confidence  # each view's conditions were widened for it
    fused = combine_members(scores, VIEW_FUSION)
    return JudgedScores(conditioned_scoring_model(raw_model, descriptor, conditions), conditions,
                        {"quantile": threshold},
                        {**score_statistics(fused[check]), "clips": "held-out training normals, judged per condition"},
                        descriptors, raw)


def make_config(kind: str, **options):
    """The configuration of ``kind`` from keyword options; None means "the default".

    An option that the kind does not take is a one-line error naming it (as ``--option``).
    """
    spec = detectors.get(kind)
    if spec.config is None:
        raise AsdError(f"--model {kind} is built from fitted detectors, not trained from audio")
    foreign = sorted(name for name, value in options.items() if value is not None and name not in spec.option_names())
    if foreign:
        takers = detectors.kinds_taking(foreign[0])
        raise AsdError(f"--{foreign[0].replace('_', '-')} does not apply to --model {kind}"
                       + (f" (it is an option of --model {', '.join(takers)})" if takers else ""))
    return spec.config(**{name: value for name, value in options.items() if value is not None})


def options_for(kind: str, options: dict) -> dict:
    """The options of ``options`` that the configuration of ``kind`` takes (for fitting every kind at once)."""
    accepted = detectors.get(kind).option_names()
    return {name: value for name, value in options.items() if name in accepted}


def load_config(folder: str, kind: str):
    """The configuration the detector in ``folder`` was fitted with (its ``config.json``)."""
    import json

    path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(path) as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AsdError(f"{path}: cannot be read ({exc}); re-fit with 'python cli.py fit --model {kind}'") from None
    return detectors.get(kind).config.from_document(document)


def fit_detector(kind: str, config, progress: Progress = no_progress, verbose: int = 0,
                 skipped: SkippedFiles | None = None) -> Detector:
    """Train and save the detector of ``kind`` described by ``config``; ``skipped`` as for the trainers."""
    return detectors.get(kind).fit(config, progress, verbose, skipped)


def split_files(config: FitConfig) -> dict:
    """``{"split.json": ...}`` for a dataset without its own train/test split (MIMII, plain folders), else {}.

    The split is deterministic (:meth:`asdkeras.data.layouts.DerivedSplitLayout.split`); the record
    lets ``test`` check that it scores none of the clips the detector trained on.
    """
    base = machine_dir(config.data_dir, config.machine, config.subset)
    layout = detect_layout(base)
    if not layout.derives_split:
        return {}
    train, test = layout.split(base, config.machine)
    return {SPLIT_FILE: {"layout": layout.name, "machine_folder": os.path.abspath(base),
                         "rule": DERIVED_SPLIT_RULE,
                         "train": [os.path.relpath(r.path, base) for r in train],
                         "test": [os.path.relpath(r.path, base) for r in test]}}


IN_SAMPLE_THRESHOLD = ("normal scores are measured on the clips the network trained on, corrected only where a domain "
                       f"has {MIN_HELD_OUT_PER_CONDITION} held out, so more normals than intended may be flagged")


def note_held_out(held_out: list, trained: list, config: FitConfig, threshold: str = IN_SAMPLE_THRESHOLD) -> None:
    """Say so when too few training clips leave no (or too little) validation set, and what the
    threshold is then fitted on (``threshold``)."""
    if len(held_out) < MIN_HELD_OUT:
        logging.getLogger("asdkeras").info(
            f"{config.machine}: {len(trained) + len(held_out)} training clips leave {len(held_out)} held out "
            f"(validation fraction {config.validation_fraction:g} of each section and domain); "
            + ("no validation set: early stopping watches the training loss; " if not held_out else "")
            + threshold)


def require_training_clips(paths: list[str], machine: str) -> None:
    if len(paths) < 2:
        raise AsdError(f"{machine}: only {len(paths)} readable training clip(s) left after skipping unreadable "
                       f"files; at least 2 are needed")


def fit_summary(detector: Detector, folder: str) -> list[str]:
    """What a fit says when it is done: clips, epochs and time, the threshold and the normals it flags,
    the GMM's battery, the variants (lines for the user)."""
    lines = []
    info, clips = detector.info, detector.info.get("clips", {})
    rule = detector.thresholds[detector.threshold_rule]
    facts = []  # what the kind recorded: not every kind has clips of outliers or epochs
    if "train_normal" in clips:
        augmented = f" + {clips['augmented']} augmented" if "augmented" in clips else ""
        facts.append(f"{clips['train_normal']}{augmented} + {clips['val_normal']} normal clips, outlier "
                     f"{info.get('outlier') or 'none'}: {clips.get('train_outlier', 0)} + {clips.get('val_outlier', 0)}")
    if "epochs_run" in info:
        facts.append(f"{info['epochs_run']} epochs, {info['fit_seconds']:.0f} s")
    elif "fit_seconds" in info:
        facts.append(f"{info['fit_seconds']:.0f} s")
    lines.append(f"saved {detector.kind} for {detector.machine} to {folder}"
                 + (f" ({'; '.join(facts)})" if facts else ""))
    lines.append(f"threshold {detector.threshold:.4g}: {rule['description']}")
    if rule.get("flagged_share_by_group"):
        shares = ", ".join(f"{group} {share:.0%}" for group, share in rule["flagged_share_by_group"].items())
        lines.append(f"normals it flags among the clips it was set on: {shares}")
    if "battery" in info:
        candidates = ", ".join(f"{name} {c['mean']:.3f}" for name, c in info["battery"]["candidates"].items())
        lines.append(f"pooling {' + '.join(f'r = {d:g}' for d in info['pooling']['decays'])}: "
                     f"{info['battery']['reason']} (battery AUC {candidates})")
    for name, sub in saved_variants(folder).items():
        variant = read_detector_json(sub)
        epochs = f"{variant['int8_epochs']} epochs, " if "int8_epochs" in variant else ""
        lines.append(f"{name} variant, {VARIANTS[name]} ({epochs}{variant.get('fit_seconds', 0):.0f} s), in {sub}: "
                     f"threshold {variant['threshold']:.4g}")
    return lines
