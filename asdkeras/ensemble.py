"""The per-machine ensemble: one detector made of a machine type's fitted detectors, built without test labels.

Modes (:data:`~asdkeras.kinds.ENSEMBLE_MODES`):

* ``battery`` (default): the candidate that the pseudo-anomaly battery (:mod:`asdkeras.battery`)
  prefers among every member alone and the fusions of all members (``fuse-mean``, ``fuse-max``),
  restricted by :data:`asdkeras.ensemble_choice.ELIGIBILITY`, each requirement while some candidate meets it (a lead
  within half the battery's own sampling error counts as a tie, which the first in order wins:
  every member before the fusions, the members by their kind's ``tie_rank``, the GMM first:
  :func:`asdkeras.battery.choose`): both a
  steady and a transient view (the default GMM and AE hold both; an AE with ``--error-pooling mean``
  only the steady one), then each clip judged in its own operating condition. Real faults are short
  transients as often as stationary changes, and a candidate blind to a whole family, or whose
  scores rise in a new operating condition, is not shipped while one without that flaw exists;
* ``pick``: the member the battery prefers, whatever it keeps;
* ``paper``: the report's per-type choice (:data:`asdkeras.ensemble_choice.REPORT_CHOICE`); the pooled GMM stands in
  where the report's model was not fitted, and for machine types outside its table;
* ``fuse``: every member's score standardised by a new normal clip's mean and spread
  (:func:`asdkeras.ensemble_members.fusion_statistics`), then combined (mean by default, max as the alternative: the max
  keeps one member's strong evidence that a mean would dilute among members that see nothing),
  with the threshold predicted from the members' correlation on clips no member trained on
  (:func:`asdkeras.scoring.fused_prediction_threshold`).

The battery alters up to :data:`asdkeras.battery.MAX_NORMALS` training-normal clips that no
member trained on (its stationary kinds add clips of machine types no member used for outlier
exposure); every candidate's AUC per kind and family is recorded in ``ensemble.json``.

The ensemble is a :class:`~asdkeras.detector.Detector` like any other: its model reads the
waveform and holds every member's front-end and scoring network (front-ends with the same
settings computed once), so ``test``, ``score`` and the TFLite export treat it like the rest.
``ensemble.json`` beside it records the mode, the figures behind the choice and the members.
``calibrate`` builds it again from the calibrated members with that choice kept (``kept``).
"""

from __future__ import annotations

import json
import os

import numpy as np

from asdkeras import detectors, ensemble_choice
from asdkeras.detector import Detector
from asdkeras.ensemble_choice import FUSIONS
from asdkeras.ensemble_members import Member, fusion_statistics, load_members, shared_held_out, spread, standardise
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.frontend import WaveformFrontend
from asdkeras.kinds import COMBINATIONS, DEFAULT_ENSEMBLE_MODE, ENSEMBLE, ENSEMBLE_MODES
from asdkeras.names import (CACHE_DIR, CONFIG_FILE, ENSEMBLE_FILE, MODELS_DIR, VARIANTS, detector_dir,
                            saved_variants)
from asdkeras.progress import Progress, no_progress
from asdkeras.scoring import combine_members, fused_prediction_threshold, score_statistics


KEPT = "; kept when its members were calibrated"
"""Appended to the reason of a choice :func:`fit_ensemble` kept (``kept``)."""


def build_ensemble_model(members: list[Member], standardised: bool, how: str = "mean", clip_samples: int | None = None):
    """Waveform -> every member's front-end and scoring model -> (standardised, combined) clip score.

    Members whose front-ends have the same settings share one computation of the features.
    """
    import keras

    from asdkeras.models.layers import CombineScores, Frontend, Standardise

    clip_samples = clip_samples or members[0].detector.frontend.clip_samples
    waveform = keras.Input((clip_samples,), name="waveform")
    features, scores = {}, []
    for member in members:
        settings = member.detector.frontend.settings()
        key = json.dumps(settings, sort_keys=True)
        if key not in features:
            features[key] = Frontend(settings, name=f"{settings['type']}_frontend")(waveform)
        score = member.detector.model(features[key])
        if standardised:
            statistics = fusion_statistics(member)
            score = Standardise(statistics["mean"], spread(statistics), name=f"standardise_{member.kind}")(score)
        scores.append(score)
    output = CombineScores(how, name="fuse_scores")(scores) if len(scores) > 1 else scores[0]
    return keras.Model(waveform, output, name="ensemble_score")


def fit_ensemble(machine: str, models_dir: str = MODELS_DIR, mode: str = DEFAULT_ENSEMBLE_MODE, how: str = "mean",
                 kinds=None, data_dir: str | None = None, cache_dir: str = CACHE_DIR,
                 output_dir: str | None = None, folders: dict[str, str] | None = None,
                 progress: Progress = no_progress, skipped: SkippedFiles | None = None,
                 kept: dict | None = None) -> Detector:
    """Build, threshold and save the ensemble of ``machine``'s fitted detectors.

    Parameters
    ----------
    machine : str
    models_dir : str
        Where the members are saved (``<models_dir>/<machine>/<kind>``); the ensemble goes to
        ``<models_dir>/<machine>/ensemble`` unless ``output_dir`` is given.
    mode : {"battery", "pick", "paper", "fuse"}
        See the module's docstring; ``battery`` is the default.
    how : {"mean", "max"}
        How ``fuse`` combines the standardised scores (``battery`` chooses it with the members).
    kinds : sequence of str, optional
        Member kinds to consider (those with a saved detector take part); None: every kind
        trained from audio.
    data_dir : str, optional
        Dataset root (default: the one the first member was fitted on).
    cache_dir : str
        Feature cache of the members.
    output_dir, folders : str, dict, optional
        Where to save the ensemble, and member folders elsewhere than under ``models_dir``.
    skipped : SkippedFiles, optional
        Unreadable clips are recorded there and left out; without it the first one raises.
    kept : dict, optional
        A saved ``ensemble.json`` whose choice (members and combination) is kept, its battery
        figures recorded as they were: the ensemble is built again from its (calibrated) members'
        statistics without choosing again (``calibrate``: the battery's normals are the same
        clips, so a choice that flipped would flip on its members' new statistics alone, and
        change the decisions of conditions that were not calibrated).
    """
    if mode not in ENSEMBLE_MODES:
        raise AsdError(f"unknown ensemble mode '{mode}'; use one of {', '.join(ENSEMBLE_MODES)}")
    if how not in COMBINATIONS:
        raise AsdError(f"fuse combines by {' or '.join(COMBINATIONS)}, not '{how}'")
    skipped = SkippedFiles.or_strict(skipped)
    members = load_members(models_dir, machine, kinds, folders)
    channels = {m.detector.frontend.channel for m in members}
    if len(channels) > 1:
        raise AsdError(f"{machine}: the members read different channels ({', '.join(map(str, channels))}); "
                       f"fit them with the same --channel")
    channel = channels.pop()
    data_dir = data_dir or members[0].config.data_dir
    subset = members[0].config.subset
    for member in members:  # the members' splits must be computed on the data they were fitted on
        member.config.data_dir = data_dir

    held_out, enough = shared_held_out(members)
    held_scores = {m.kind: m.detector.score_files([r.path for r in held_out], cache_dir, progress, skipped)
                   for m in members}
    readable = [i for i, r in enumerate(held_out) if r.path not in skipped]
    held_out, held_scores = [held_out[i] for i in readable], {k: v[readable] for k, v in held_scores.items()}
    outliers = {m.detector.info.get("outlier") for m in members} - {None}
    figures = {m.kind: {"held_out_mean": float(np.mean(held_scores[m.kind])),
                        "normal_mean": m.detector.normal_scores["mean"], "normal_std": m.detector.normal_scores["std"],
                        "fusion": fusion_statistics(m), "threshold": m.detector.threshold} for m in members}
    choosing = mode in ("battery", "pick") and kept is None
    candidates, scores, others = (ensemble_choice.battery_figures(members, held_out, data_dir, subset, machine, outliers, channel,
                                                   skipped) if choosing else ({}, {}, []))

    what = ("scores of training-normal clips no member trained on" if enough else
            "scores of all training-normal clips (too few held out by every member: members trained on most of "
            "them, so more normals than intended may be flagged)")
    domains = [r.domain for r in held_out]
    allowed = []
    if kept is not None:
        missing = sorted(set(kept["members"]) - {m.kind for m in members})
        if missing:
            raise AsdError(f"{machine}: the ensemble's member {', '.join(missing)} is not saved any more; build the "
                           f"ensemble again with 'python cli.py fit --machine {machine} --model ensemble'")
        fused, how = kept.get("combine") is not None, kept.get("combine") or how
        used = [m for m in members if m.kind in kept["members"]]
        reason = kept["reason"] if kept["reason"].endswith(KEPT) else f"{kept['reason']}{KEPT}"
    elif mode in ("battery", "pick"):
        from asdkeras import battery

        applied = []
        if mode == "battery":
            allowed, applied = ensemble_choice.eligible(candidates) if candidates else ([], [])
        else:
            allowed = [name for name in candidates if name not in FUSIONS]  # the members, in tie order
        if allowed:
            errors = None
            if mode == "battery":  # a lead within the battery's own sampling error is a tie: the first in order
                best = max(allowed, key=lambda name: candidates[name]["mean"])
                errors = battery.lead_errors({name: scores[name] for name in allowed}, best)
                for name, error in errors.items():
                    candidates[name]["lead_error"] = {"over": best, "sd": error}
            choice, reason = battery.choose({name: candidates[name] for name in allowed}, errors)
            if applied:
                reason += f"; among the candidates {' and '.join(applied)}"
        else:
            choice = detectors.by_tie_rank([m.kind for m in members])[0]
            reason = "no held-out clip could be altered: the first member in tie order"
        fused, how = choice in FUSIONS, FUSIONS.get(choice, how)
        used = members if fused else [m for m in members if m.kind == choice]
    elif mode == "fuse":
        fused, used, reason = True, members, f"every member, standardised by its held-out normal scores, combined by {how}"
    else:
        kind, reason = ensemble_choice.paper_choice(machine, [m.kind for m in members])
        fused, used = False, [m for m in members if m.kind == kind]
    chosen = [m.kind for m in used]

    def scored(used: list[Member], held_scores: dict) -> tuple:
        """The ensemble model of ``used`` and its thresholds, rule, normal scores and units."""
        model = build_ensemble_model(used, standardised=fused, how=how)
        if not fused:
            picked = used[0].detector
            return model, picked.thresholds, picked.threshold_rule, picked.normal_scores, picked.score_units
        parts = np.stack([standardise(held_scores[m.kind], fusion_statistics(m)) for m in used], axis=1)
        scores = combine_members(parts, how)
        thresholds = {"quantile": fused_prediction_threshold(parts, how, members[0].config.threshold_quantile,
                                                             what, domains)}
        return (model, thresholds, "quantile", {**score_statistics(scores), "clips": f"fused {what}"},
                f"{how} over members of (score - mean) / std of a new normal clip's score of the member "
                f"({', '.join(chosen)})")

    model, thresholds, rule, normal_scores, units = scored(used, held_scores)
    # members with a variant (MobileNetV2's int8 twin) take part through it in the ensemble's own
    # variant of that name (from which its integer TFLite files are converted)
    variant_parts = {}
    for name in VARIANTS:
        folders = {m.kind: saved_variants(m.folder).get(name) for m in used}
        if not any(folders.values()):
            continue
        variant_members = [Member(m.kind, folders[m.kind], Detector.load(folders[m.kind]), m.config)
                           if folders[m.kind] else m for m in used]
        variant_scores = {m.kind: m.detector.score_files([r.path for r in held_out], cache_dir, progress, skipped)
                          if folders[m.kind] else held_scores[m.kind] for m in variant_members}
        flags = {"quantisation_aware": True} if any(m.detector.info.get("quantisation_aware")
                                                    for m in variant_members) else {}
        variant_parts[name] = (scored(variant_members, variant_scores), flags)
    document = {"mode": mode, "combine": how if fused else None, "members": chosen, "reason": reason,
                "candidates": {m.kind: os.path.abspath(m.folder) for m in members}, "figures": figures,
                "held_out": {"clips": len(held_out), "shared_by_all": enough}}
    if kept is not None and "battery" in kept:
        document["battery"] = kept["battery"]
    if candidates:
        from asdkeras import battery

        document["battery"] = {"rule": battery.RULE, "kinds": battery.describe_battery(),
                               "normals": min(len(held_out), battery.MAX_NORMALS),
                               "other_machine_types": sorted({r.machine for r in others}),
                               "excluded_outlier_types": sorted(outliers), "candidates": candidates,
                               "eligible": allowed,
                               "ties": (f"within {battery.TIE} of the best mean, or (battery mode) within "
                                        f"{battery.NOISE_MARGIN:g} standard deviations of the best's lead over the "
                                        f"candidate ({battery.RESAMPLINGS} resamplings of the normal clips, "
                                        f"`lead_error`): the first in order (members by their kind's tie rank, then "
                                        f"the fusions)")}
    info = {"ensemble": document, "outlier": next(iter(sorted(outliers)), None), "clips": {"held_out": len(held_out)}}

    def ensemble_detector(model, thresholds, rule, normal_scores, units, **more) -> Detector:
        return Detector(kind=ENSEMBLE, machine=machine, frontend=WaveformFrontend(channel=channel), model=model,
                        score_units=units, thresholds=thresholds, threshold_rule=rule, normal_scores=normal_scores,
                        info={**info, **more})

    detector = ensemble_detector(model, thresholds, rule, normal_scores, units)
    detector.variants = {name: ensemble_detector(*parts, **flags) for name, (parts, flags) in variant_parts.items()}
    folder = output_dir or detector_dir(models_dir, machine, ENSEMBLE)
    config = {"mode": mode, "combine": how, "kinds": list(kinds or detectors.model_kinds()), "data_dir": data_dir,
              "subset": subset, "models_dir": models_dir, "cache_dir": cache_dir}
    detector.save(folder, {ENSEMBLE_FILE: document, CONFIG_FILE: config})
    return detector


