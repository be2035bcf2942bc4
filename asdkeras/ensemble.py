"""The per-machine ensemble: one detector made of a machine type's fitted detectors, built without test labels.

Modes (:data:`ENSEMBLE_MODES`):

* ``pick``: the member that a label-free rule prefers. The rule: the highest **contamination
  AUC**: normal training clips none of the members trained on, against the same clips with a
  clip of another machine type added at :data:`PROXY_SNRS_DB` below them (types no member used
  for outlier exposure), AUC averaged over the levels; ties within :data:`PROXY_TIE` broken by
  the pAUC, then by :data:`MODEL_KINDS` order. Other machine types *alone* make a useless proxy:
  every detector but one separated them perfectly on all seven synthetic types (BENCHMARKS.md),
  while an added sound 10-20 dB down is where the detectors differ, and it is also what many
  real faults are: a component added to the machine's normal sound;
* ``paper``: the report's per-type choice (:data:`REPORT_CHOICE`); the pooled GMM stands in
  where the report's model was not fitted, and for machine types outside its table;
* ``fuse``: every member's score standardised by the mean and standard deviation of its own
  held-out training-normal scores (``normal_scores`` in its ``detector.json``), then combined
  (mean by default, max as the alternative), with the threshold refitted on the fused scores of
  clips no member trained on.

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

from asdkeras.data.layout import ClipRecord, list_machines, random_subset, scan_split, select
from asdkeras.detector import DETECTOR_FILE, Detector, detector_dir, int8_twin_dir
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.fit import MIN_HELD_OUT, load_config
from asdkeras.frontend import WaveformFrontend
from asdkeras.kinds import COMBINATIONS, DEFAULT_ENSEMBLE_MODE, ENSEMBLE, ENSEMBLE_MODES, MODEL_KINDS
from asdkeras.pipeline import Progress, no_progress
from asdkeras.scoring import quantile_threshold, score_statistics

ENSEMBLE_FILE = "ensemble.json"

REPORT_CHOICE = {"fan": "ae", "slider": "mobilenet", "ToyCar": "ae", "ToyTrain": "ae", "gearbox": "mobilenet",
                 "valve": "mobilenet", "bearing": "ae"}
"""The report's third system: per machine type, the better of its two models on the labelled dev set."""

PROXY_CLIPS_PER_TYPE = 20
"""Training clips drawn from each other machine type as contaminating sounds."""

PROXY_SNRS_DB = (20.0, 10.0)
"""Levels (dB below the normal clip's power) at which another machine's sound is added. At 30 dB
every detector was at chance, at 0 dB nearly every one separated the mixtures perfectly
(synthetic data, BENCHMARKS.md): the ranking lies between."""

PROXY_MAX_NORMALS = 100
"""At most this many held-out normal clips are contaminated (the mixtures are held in memory)."""

PROXY_TIE = 0.005
"""Proxy AUCs closer than this count as equal (other machine types are often separated perfectly)."""


@dataclass
class Member:
    """A fitted detector taking part in an ensemble, with the configuration it was fitted with."""

    kind: str
    folder: str
    detector: Detector
    config: object


def load_members(models_dir: str, machine: str, kinds=MODEL_KINDS, folders: dict[str, str] | None = None) -> list[Member]:
    """The machine's saved detectors of the given kinds (at least one, else a one-line error).

    ``folders`` maps a kind to a detector folder elsewhere than ``<models_dir>/<machine>/<kind>``.
    """
    members = []
    for kind in kinds:
        folder = (folders or {}).get(kind) or detector_dir(models_dir, machine, kind)
        if os.path.isfile(os.path.join(folder, DETECTOR_FILE)):
            members.append(Member(kind, folder, Detector.load(folder), load_config(folder, kind)))
    if not members:
        raise AsdError(f"{models_dir}/{machine}: no fitted detector to build an ensemble from; "
                       f"run 'python cli.py fit --machine {machine} --model all'")
    return members


def shared_held_out(members: list[Member]) -> tuple[list[ClipRecord], bool]:
    """Training-normal clips that no member trained on, and whether there are enough of them.

    With fewer than :data:`asdkeras.fit.MIN_HELD_OUT` (as a single fit does then), every
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


def proxy_records(data_dir: str, subset: str, machine: str, exclude: set[str],
                  per_type: int = PROXY_CLIPS_PER_TYPE, seed: int = 0) -> list[ClipRecord]:
    """``per_type`` random normal training clips of every other machine type not in ``exclude``."""
    rng = np.random.default_rng(seed)
    chosen = []
    for other in list_machines(data_dir, subset):
        if other == machine or other in exclude:
            continue
        clips = select(scan_split(data_dir, other, "train", subset), label="normal")
        chosen += random_subset(clips, per_type, rng)
    return chosen


def contaminate(normals: np.ndarray, others: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Each normal clip plus a random clip of ``others`` scaled to ``snr_db`` dB below it (mean power).

    Parameters
    ----------
    normals, others : ndarray, shape (clips, samples)
        Waveforms in [-1, 1] at the same sample rate.
    snr_db : float
        Power of the normal clip over that of the added sound, in dB.
    """
    picks = others[rng.integers(len(others), size=len(normals))]
    gains = np.sqrt(np.mean(normals ** 2, axis=1) / (np.maximum(np.mean(picks ** 2, axis=1), 1e-20) * 10 ** (snr_db / 10)))
    return (normals + gains[:, np.newaxis] * picks).astype(np.float32)


def separation(normal_scores: np.ndarray, anomalous_scores: np.ndarray) -> dict:
    """AUC and pAUC (FPR <= 0.1) of normal against anomalous scores."""
    from asdkeras.metrics import MAX_FPR
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(normal_scores)), np.ones(len(anomalous_scores))]
    values = np.r_[normal_scores, anomalous_scores]
    return {"auc": float(roc_auc_score(labels, values)),
            "pauc": float(roc_auc_score(labels, values, max_fpr=MAX_FPR))}


def contamination_figures(members: list[Member], held_out: list[ClipRecord], sounds: np.ndarray,
                          seed: int = 0, channel: int | None = None) -> dict[str, dict]:
    """Per member: AUC and pAUC of held-out normals against their contaminated copies, per level and averaged.

    ``sounds``: decoded clips of the other machine types ``(clips, samples)``. ``other_types_alone``:
    the same figures against those clips themselves, for the record.
    """
    from asdkeras.audio import load_clip

    rng = np.random.default_rng(seed)
    if len(held_out) > PROXY_MAX_NORMALS:
        held_out = random_subset(held_out, PROXY_MAX_NORMALS, rng)
    normals = np.stack([load_clip(r.path, channel) for r in held_out]).astype(np.float32)
    mixtures = {snr: contaminate(normals, sounds, snr, rng) for snr in PROXY_SNRS_DB}
    figures = {}
    for member in members:
        normal_scores = member.detector.score_waveforms(normals)
        levels = {f"{snr:g} dB": separation(normal_scores, member.detector.score_waveforms(mixed))
                  for snr, mixed in mixtures.items()}
        figures[member.kind] = {"auc": float(np.mean([v["auc"] for v in levels.values()])),
                                "pauc": float(np.mean([v["pauc"] for v in levels.values()])), "levels": levels,
                                "other_types_alone": separation(normal_scores, member.detector.score_waveforms(sounds))}
    return figures


def standardise(scores: np.ndarray, statistics: dict) -> np.ndarray:
    """Scores in units of the held-out normal scores' spread: ``(s - mean) / std``."""
    return (np.asarray(scores, np.float64) - statistics["mean"]) / _spread(statistics)


def _spread(statistics: dict) -> float:
    return max(float(statistics["std"]), 1e-12)


def combine(standardised: list[np.ndarray], how: str) -> np.ndarray:
    """Mean or max over members of standardised scores (one array per member)."""
    stacked = np.stack(standardised, axis=1)
    return stacked.mean(axis=1) if how == "mean" else stacked.max(axis=1)


def pick_by_proxy(figures: dict[str, dict]) -> tuple[str, str]:
    """The member the label-free rule prefers, and why (``figures``: kind -> {"auc", "pauc"})."""
    kinds = sorted(figures, key=MODEL_KINDS.index)
    best_auc = max(figures[k]["auc"] for k in kinds)
    tied = [k for k in kinds if figures[k]["auc"] >= best_auc - PROXY_TIE]
    best = max(tied, key=lambda k: (figures[k]["pauc"], -kinds.index(k)))
    if len(tied) == 1:
        return best, f"highest contamination AUC ({figures[best]['auc']:.3f})"
    return best, (f"contamination AUC tied within {PROXY_TIE} among {', '.join(tied)}; highest pAUC "
                  f"({figures[best]['pauc']:.3f})")


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
            statistics = member.detector.normal_scores
            score = Standardise(statistics["mean"], _spread(statistics), name=f"standardise_{member.kind}")(score)
        scores.append(score)
    output = CombineScores(how, name="fuse_scores")(scores) if len(scores) > 1 else scores[0]
    return keras.Model(waveform, output, name="ensemble_score")


def fit_ensemble(machine: str, models_dir: str = "saved_models", mode: str = DEFAULT_ENSEMBLE_MODE, how: str = "mean",
                 kinds=MODEL_KINDS, data_dir: str | None = None, cache_dir: str = "cache",
                 output_dir: str | None = None, folders: dict[str, str] | None = None,
                 progress: Progress = no_progress, skipped: SkippedFiles | None = None) -> Detector:
    """Build, threshold and save the ensemble of ``machine``'s fitted detectors.

    Parameters
    ----------
    machine : str
    models_dir : str
        Where the members are saved (``<models_dir>/<machine>/<kind>``); the ensemble goes to
        ``<models_dir>/<machine>/ensemble`` unless ``output_dir`` is given.
    mode : {"fuse", "pick", "paper"}
        See the module's docstring; ``fuse`` is the default (measured best, see BENCHMARKS.md).
    how : {"mean", "max"}
        How ``fuse`` combines the standardised scores.
    kinds : sequence of str
        Member kinds to consider (those with a saved detector take part).
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
    proxies, sounds = _decode_readable(proxy_records(data_dir, subset, machine, outliers), channel, skipped)
    contamination = contamination_figures(members, held_out, sounds, channel=channel) if proxies else {}
    figures = {}
    for member in members:
        figures[member.kind] = {
            **contamination.get(member.kind, {"auc": None, "pauc": None}),
            "held_out_mean": float(np.mean(held_scores[member.kind])),
            "normal_mean": member.detector.normal_scores["mean"], "normal_std": member.detector.normal_scores["std"],
            "threshold": member.detector.threshold}

    what = ("scores of training-normal clips no member trained on" if enough else
            "scores of all training-normal clips (too few held out by every member: members trained on most of "
            "them, so more normals than intended may be flagged)")
    domains = [r.domain for r in held_out]
    if mode == "fuse":
        used, reason = members, f"every member, standardised by its held-out normal scores, combined by {how}"
    else:
        if mode == "paper":
            kind, reason = _paper_choice(machine, [m.kind for m in members])
        elif proxies:
            kind, reason = pick_by_proxy(figures)
        else:
            kind, reason = members[0].kind, "no other machine type to contaminate clips with: the first member"
        used = [m for m in members if m.kind == kind]
    chosen = [m.kind for m in used]

    def scored(used: list[Member], held_scores: dict) -> tuple:
        """The ensemble model of ``used`` and its thresholds, rule, normal scores and units."""
        model = build_ensemble_model(used, standardised=mode == "fuse", how=how)
        if mode != "fuse":
            picked = used[0].detector
            return model, picked.thresholds, picked.threshold_rule, picked.normal_scores, picked.score_units
        fused = combine([standardise(held_scores[m.kind], m.detector.normal_scores) for m in used], how)
        thresholds = {"quantile": quantile_threshold(fused, members[0].config.threshold_quantile, f"fused {what}",
                                                     domains)}
        return (model, thresholds, "quantile", {**score_statistics(fused), "clips": f"fused {what}"},
                f"{how} over members of (score - mean) / std of the member's held-out normal scores "
                f"({', '.join(chosen)})")

    model, thresholds, rule, normal_scores, units = scored(used, held_scores)
    # members with a quantisation-aware twin (MobileNetV2) take part through it in the ensemble's own
    # twin, from which its integer TFLite variants are converted
    twins = {m.kind: int8_twin_dir(m.folder) for m in used}
    twin_parts = None
    if any(twins.values()):
        twin_members = [Member(m.kind, twins[m.kind], Detector.load(twins[m.kind]), m.config) if twins[m.kind] else m
                        for m in used]
        twin_scores = {m.kind: m.detector.score_files([r.path for r in held_out], cache_dir, progress, skipped)
                       if twins[m.kind] else held_scores[m.kind] for m in twin_members}
        twin_parts = scored(twin_members, twin_scores)
    document = {"mode": mode, "combine": how if mode == "fuse" else None, "members": chosen, "reason": reason,
                "candidates": {m.kind: os.path.abspath(m.folder) for m in members}, "figures": figures,
                "proxy": {"rule": "AUC of held-out normals against copies with another machine type's clip added, "
                                  f"averaged over {', '.join(f'{v:g}' for v in PROXY_SNRS_DB)} dB below them",
                          "machine_types": sorted({r.machine for r in proxies}), "clips": len(proxies),
                          "excluded_outlier_types": sorted(outliers)},
                "held_out": {"clips": len(held_out), "shared_by_all": enough}}
    info = {"ensemble": document, "outlier": next(iter(sorted(outliers)), None), "clips": {"held_out": len(held_out)}}

    def ensemble_detector(model, thresholds, rule, normal_scores, units, **more) -> Detector:
        return Detector(kind=ENSEMBLE, machine=machine, frontend=WaveformFrontend(channel=channel), model=model,
                        score_units=units, thresholds=thresholds, threshold_rule=rule, normal_scores=normal_scores,
                        info={**info, **more})

    detector = ensemble_detector(model, thresholds, rule, normal_scores, units)
    twin = ensemble_detector(*twin_parts, quantisation_aware=True) if twin_parts else None
    folder = output_dir or detector_dir(models_dir, machine, ENSEMBLE)
    config = {"mode": mode, "combine": how, "kinds": list(kinds), "data_dir": data_dir, "subset": subset,
              "models_dir": models_dir, "cache_dir": cache_dir}
    detector.save(folder, {ENSEMBLE_FILE: document, "config.json": config}, int8_twin=twin)
    return detector


def _decode_readable(records: list[ClipRecord], channel: int | None,
                     skipped: SkippedFiles) -> tuple[list[ClipRecord], np.ndarray | None]:
    """The records that decode, and their clips ``(clips, samples)`` (None when there are none)."""
    from asdkeras.audio import load_clip

    readable, clips = [], []
    for record in records:
        try:
            clips.append(load_clip(record.path, channel))
        except AsdError as exc:
            skipped.add(record.path, str(exc))
            continue
        readable.append(record)
    return readable, np.stack(clips) if clips else None


def _paper_choice(machine: str, available: list[str]) -> tuple[str, str]:
    wanted = REPORT_CHOICE.get(machine)
    if wanted in available:
        return wanted, f"the report's choice for {machine}"
    stand_in = "gmm" if "gmm" in available else available[0]
    why = (f"the report's choice ({wanted}) is not fitted" if wanted else f"the report has no choice for {machine}")
    return stand_in, f"{why}: {stand_in} stands in"


def describe_choice(document: dict) -> str:
    """One line for the user: the mode, the members used and why, with the contamination AUCs."""
    aucs = ", ".join(f"{kind} {f['auc']:.3f}" for kind, f in document["figures"].items() if f.get("auc") is not None)
    return (f"ensemble {document['mode']}: {' + '.join(document['members'])} ({document['reason']})"
            + (f"; contamination AUC {aucs}" if aucs else ""))
