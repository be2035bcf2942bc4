"""The per-machine ensemble: one detector made of a machine type's fitted detectors, built without test labels.

Modes (:data:`~asdkeras.kinds.ENSEMBLE_MODES`):

* ``battery`` (default): the candidate that the pseudo-anomaly battery (:mod:`asdkeras.battery`)
  prefers among every member alone and the fusions of all members (``fuse-mean``, ``fuse-max``),
  restricted by :data:`ELIGIBILITY`, each requirement while some candidate meets it (a lead
  within twice the battery's own sampling error counts as a tie, which the simpler candidate
  wins: :func:`asdkeras.battery.choose`): both a
  steady and a transient view (the default GMM and AE hold both; an AE with ``--error-pooling mean``
  only the steady one), then each clip judged in its own operating condition. Real faults are short
  transients as often as stationary changes, and a candidate blind to a whole family, or whose
  scores rise in a new operating condition, is not shipped while one without that flaw exists;
* ``pick``: the member the battery prefers, whatever it keeps;
* ``paper``: the report's per-type choice (:data:`REPORT_CHOICE`); the pooled GMM stands in
  where the report's model was not fitted, and for machine types outside its table;
* ``fuse``: every member's score standardised by a new normal clip's mean and spread
  (:func:`fusion_statistics`), then combined (mean by default, max as the alternative: the max
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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from asdkeras import detectors
from asdkeras.data.layout import ClipRecord, random_subset
from asdkeras.detector import Detector
from asdkeras.detectors.config import MIN_HELD_OUT
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.fit import load_config
from asdkeras.frontend import WaveformFrontend
from asdkeras.kinds import COMBINATIONS, DEFAULT_ENSEMBLE_MODE, ENSEMBLE, ENSEMBLE_MODES
from asdkeras.names import (CACHE_DIR, CONFIG_FILE, DETECTOR_FILE, ENSEMBLE_FILE, MODELS_DIR, VARIANTS, detector_dir,
                            saved_variants)
from asdkeras.progress import Progress, no_progress
from asdkeras.scoring import combine_members, fused_normal_statistics, fused_prediction_threshold, score_statistics


REPORT_CHOICE = {"fan": "ae", "slider": "mobilenet", "ToyCar": "ae", "ToyTrain": "ae", "gearbox": "mobilenet",
                 "valve": "mobilenet", "bearing": "ae"}
"""The report's third system: per machine type, the better of its two models on the labelled dev set."""
PAPER_STAND_IN = "gmm"
"""The member ``paper`` takes when the report's choice is not fitted: the one fitted without labels or outliers."""

FUSIONS = {"fuse-mean": "mean", "fuse-max": "max"}
"""Battery candidates that fuse every member, and how."""

@dataclass
class Member:
    """A fitted detector taking part in an ensemble, with the configuration it was fitted with."""

    kind: str
    folder: str
    detector: Detector
    config: object


def load_members(models_dir: str, machine: str, kinds=None, folders: dict[str, str] | None = None) -> list[Member]:
    """The machine's saved detectors of the given kinds (at least one, else a one-line error).

    ``kinds``: None for every kind trained from audio. ``folders`` maps a kind to a detector
    folder elsewhere than ``<models_dir>/<machine>/<kind>``.
    """
    members = []
    for kind in kinds or detectors.model_kinds():
        folder = (folders or {}).get(kind) or detector_dir(models_dir, machine, kind)
        if os.path.isfile(os.path.join(folder, DETECTOR_FILE)):
            members.append(Member(kind, folder, Detector.load(folder), load_config(folder, kind)))
    if not members:
        raise AsdError(f"{models_dir}/{machine}: no fitted detector to build an ensemble from; "
                       f"run 'python cli.py fit --machine {machine} --model all'")
    return members


def shared_held_out(members: list[Member]) -> tuple[list[ClipRecord], bool]:
    """Training-normal clips that no member trained on, and whether there are enough of them.

    With fewer than :data:`asdkeras.detectors.config.MIN_HELD_OUT` (as a single fit does then), every
    training-normal clip of the members is returned instead, with ``False``: members then score
    clips they trained on.
    """
    splits = [m.config.normal_split() for m in members]
    trained = {r.path for train, _ in splits for r in train}
    every = {r.path: r for train, held in splits for r in train + held}
    shared = [r for path, r in sorted(every.items()) if path not in trained]
    if len(shared) >= MIN_HELD_OUT:
        return shared, True
    return [r for _, r in sorted(every.items())], False


def standardise(scores: np.ndarray, statistics: dict) -> np.ndarray:
    """Scores in units of a new normal clip's spread: ``(s - mean) / std`` (``statistics`` of :func:`fusion_statistics`)."""
    return (np.asarray(scores, np.float64) - statistics["mean"]) / _spread(statistics)


def _spread(statistics: dict) -> float:
    return max(float(statistics["std"]), 1e-12)


def fusion_statistics(member: Member) -> dict:
    """Mean and spread of a new normal clip's score of ``member``, by which fusions standardise it.

    A member judged per condition with a prediction threshold (the networks, whichever of their
    rules decides) is already in those units (a member of several such views fused, the AE's
    ``mean+peak``: their fusion's mean and spread, :func:`asdkeras.scoring.fused_normal_statistics`): each condition's scores are standardised and widened
    for a new clip, so a new normal's score is ``(0, 1)`` by construction. Its ``normal_scores`` would understate
    the spread, because the held-out clips they come from also set the conditions' statistics
    (bearing's autoencoder: 0.71, against 1.0-1.6 on test normals). Any other member: the
    statistics of its held-out or out-of-fold normal scores (``normal_scores``).
    """
    records = member.detector.thresholds.values()
    if any(record.get("rule") == "condition-prediction" for record in records):
        return {"mean": 0.0, "std": 1.0, "from": "judged per condition: a new normal clip's score is (0, 1)"}
    views = [r for r in records if r.get("rule") == "fused-prediction" and "combine" in r]
    if views:  # views of one network, each judged per condition, then fused (the AE's mean+peak)
        normal = views[0].get("new_normal")  # recorded at fit; detectors saved before it: the same draws again
        mean, std = ((normal["mean"], normal["std"]) if normal
                     else fused_normal_statistics(views[0]["correlation"]["used"], views[0]["combine"]))
        return {"mean": mean, "std": std, "from": f"views judged per condition, each (0, 1), fused by their "
                                                  f"{views[0]['combine']} with the correlation of its threshold"}
    statistics = member.detector.normal_scores
    return {"mean": float(statistics["mean"]), "std": float(statistics["std"]),
            "from": statistics.get("clips", "held-out normal clip scores")}


def member_views(member: Member) -> set[str]:
    """The fault families a member's score keeps ("steady", "transient"), as its fit recorded them."""
    return set(member.detector.info.get("views") or member.detector.info.get("pooling", {}).get("views") or ())


def judges_per_condition(member: Member) -> bool:
    """Whether a member scores each clip against normals of its own operating condition (its fit says so)."""
    return bool(member.detector.info.get("judged_per_condition"))


def battery_candidates(members: list[Member], scores: dict[str, tuple[np.ndarray, dict]]) -> dict[str, dict]:
    """Battery figures of every member alone and of every fusion of all members, from their battery
    scores (:func:`candidate_scores`)."""
    from asdkeras import battery

    candidates = {}
    for member in members:  # first: on a battery tie the simpler candidate wins
        candidates[member.kind] = {"members": [member.kind], "combine": None, "views": sorted(member_views(member)),
                                   "per_condition": judges_per_condition(member),
                                   **battery.battery_figures(*scores[member.kind])}
    if len(members) > 1:
        for name, how in FUSIONS.items():
            candidates[name] = {"members": [m.kind for m in members], "combine": how,
                                "views": sorted(set().union(*(member_views(m) for m in members))),
                                "per_condition": all(judges_per_condition(m) for m in members),
                                **battery.battery_figures(*scores[name])}
    return candidates


def candidate_scores(members: list[Member], normal: dict[str, np.ndarray],
                     altered: dict[str, dict[str, np.ndarray]]) -> dict[str, tuple[np.ndarray, dict]]:
    """Every candidate's battery scores: name -> (scores of the normal clips, {kind -> scores of their
    altered copies}).

    ``normal``: member kind -> scores of the battery's normal clips; ``altered``: member kind ->
    {pseudo-anomaly kind -> scores of the altered clips} (:func:`battery_scores`).
    """
    scores = {m.kind: (normal[m.kind], altered[m.kind]) for m in members}
    if len(members) > 1:
        scores.update({name: fused_battery_scores(members, normal, altered, how) for name, how in FUSIONS.items()})
    return scores


def fused_battery_scores(members: list[Member], normal: dict[str, np.ndarray],
                         altered: dict[str, dict[str, np.ndarray]], how: str) -> tuple[np.ndarray, dict]:
    """The fusion (``how``) of every member's standardised battery scores: of the normal clips, and
    per pseudo-anomaly kind of the altered ones (``normal`` and ``altered`` as in :func:`candidate_scores`)."""
    def fused(scores_of):
        return combine_members(np.stack([standardise(scores_of(m), fusion_statistics(m)) for m in members], axis=1),
                               how)
    return fused(lambda m: normal[m.kind]), {k: fused(lambda m: altered[m.kind][k]) for k in altered[members[0].kind]}


ELIGIBILITY = (("keeping a steady and a transient view", lambda c: {"steady", "transient"} <= set(c["views"])),
               ("judging each clip in its own operating condition", lambda c: c.get("per_condition", False)))
"""What ``battery`` mode asks of a candidate, in order: each requirement applies while some candidate meets it."""


def eligible(candidates: dict[str, dict]) -> tuple[list[str], list[str]]:
    """The candidates ``battery`` mode may choose, and the requirements that narrowed them (:data:`ELIGIBILITY`).

    A detector blind to a whole family of real faults is not shipped while one that sees both
    exists; nor one whose score rises in a new operating condition (a member without per-condition
    scoring, or a fusion holding one, flagged 23-50 % of target normals on fresh synthetic data,
    BENCHMARKS.md) while one that judges each clip in its own condition exists.
    """
    names, applied = list(candidates), []
    for requirement, meets in ELIGIBILITY:
        kept = [name for name in names if meets(candidates[name])]
        if kept and len(kept) < len(names):
            names, applied = kept, applied + [requirement]
    return names, applied


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
            score = Standardise(statistics["mean"], _spread(statistics), name=f"standardise_{member.kind}")(score)
        scores.append(score)
    output = CombineScores(how, name="fuse_scores")(scores) if len(scores) > 1 else scores[0]
    return keras.Model(waveform, output, name="ensemble_score")


def fit_ensemble(machine: str, models_dir: str = MODELS_DIR, mode: str = DEFAULT_ENSEMBLE_MODE, how: str = "mean",
                 kinds=None, data_dir: str | None = None, cache_dir: str = CACHE_DIR,
                 output_dir: str | None = None, folders: dict[str, str] | None = None,
                 progress: Progress = no_progress, skipped: SkippedFiles | None = None) -> Detector:
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
    candidates, scores, others = (_battery_figures(members, held_out, data_dir, subset, machine, outliers, channel,
                                                   skipped) if mode in ("battery", "pick") else ({}, {}, []))

    what = ("scores of training-normal clips no member trained on" if enough else
            "scores of all training-normal clips (too few held out by every member: members trained on most of "
            "them, so more normals than intended may be flagged)")
    domains = [r.domain for r in held_out]
    allowed = []
    if mode in ("battery", "pick"):
        from asdkeras import battery

        applied = []
        if mode == "battery":
            allowed, applied = eligible(candidates) if candidates else ([], [])
        else:
            allowed = [m.kind for m in members] if candidates else []
        if allowed:
            errors = None
            if mode == "battery":  # a lead within the battery's own sampling error goes to the simpler candidate
                best = max(allowed, key=lambda name: candidates[name]["mean"])
                errors = battery.lead_errors({name: scores[name] for name in allowed}, best)
                for name, error in errors.items():
                    candidates[name]["lead_error"] = {"over": best, "sd": error}
            choice, reason = battery.choose({name: candidates[name] for name in allowed}, errors)
            if applied:
                reason += f"; among the candidates {' and '.join(applied)}"
        else:
            choice, reason = members[0].kind, "no held-out clip could be altered: the first member"
        fused, how = choice in FUSIONS, FUSIONS.get(choice, how)
        used = members if fused else [m for m in members if m.kind == choice]
    elif mode == "fuse":
        fused, used, reason = True, members, f"every member, standardised by its held-out normal scores, combined by {how}"
    else:
        kind, reason = _paper_choice(machine, [m.kind for m in members])
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
                                        f"`lead_error`): the first in order, the simpler")}
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


def _battery_figures(members: list[Member], held_out: list[ClipRecord], data_dir: str, subset: str, machine: str,
                     outliers: set[str], channel: int | None, skipped: SkippedFiles) -> tuple[dict, dict, list]:
    """Battery figures of every candidate (:func:`battery_candidates`) on up to MAX_NORMALS held-out clips.

    Returns the figures ({} when no clip decodes), every candidate's scores (:func:`candidate_scores`)
    and the other machines' records used.
    """
    scored = battery_scores(members, held_out, data_dir, subset, machine, outliers, channel, skipped)
    if scored is None:
        return {}, {}, []
    normal, altered, others = scored
    scores = candidate_scores(members, normal, altered)
    return battery_candidates(members, scores), scores, others


def battery_scores(members: list[Member], held_out: list[ClipRecord], data_dir: str, subset: str, machine: str,
                   outliers: set[str], channel: int | None, skipped: SkippedFiles) -> tuple | None:
    """Every member's scores of up to MAX_NORMALS held-out clips and of their altered copies.

    Returns ``(normal, altered, others)``: member kind -> scores of the normal clips; member kind
    -> {pseudo-anomaly kind -> scores of the altered clips}; the other machines' records used. None
    when no clip decodes.
    """
    from asdkeras import battery

    chosen = random_subset(held_out, battery.MAX_NORMALS, np.random.default_rng(0))
    _, normals = battery.decode_readable([r.path for r in chosen], channel, skipped)
    others = battery.other_machine_records(data_dir, subset, machine, outliers, battery.OTHER_CLIPS_PER_TYPE)
    readable, other_clips = battery.decode_readable([r.path for r in others], channel, skipped)
    if normals is None:
        return None
    normal = {m.kind: m.detector.score_waveforms(normals) for m in members}
    altered = {m.kind: {} for m in members}
    for name, clips in battery.altered_clips(normals, battery.Context(other_clips)):
        for member in members:
            altered[member.kind][name] = member.detector.score_waveforms(clips)
    return normal, altered, [r for r in others if r.path in set(readable)]


def _paper_choice(machine: str, available: list[str]) -> tuple[str, str]:
    wanted = REPORT_CHOICE.get(machine)
    if wanted in available:
        return wanted, f"the report's choice for {machine}"
    stand_in = PAPER_STAND_IN if PAPER_STAND_IN in available else available[0]
    why = (f"the report's choice ({wanted}) is not fitted" if wanted else f"the report has no choice for {machine}")
    return stand_in, f"{why}: {stand_in} stands in"


def describe_choice(document: dict) -> str:
    """One line for the user: the mode, the members used and why, with the battery's mean AUCs."""
    candidates = document.get("battery", {}).get("candidates", {})
    aucs = ", ".join(f"{name} {c['mean']:.3f}" for name, c in candidates.items())
    return (f"ensemble {document['mode']}: {' + '.join(document['members'])} ({document['reason']})"
            + (f"; battery AUC {aucs}" if aucs else ""))
