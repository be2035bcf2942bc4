"""Which candidate a per-machine ensemble ships, without test labels: every member alone and the
fusions of all members, scored on the pseudo-anomaly battery (:mod:`asdkeras.battery`), narrowed by
:data:`ELIGIBILITY`; or the report's per-type table (``paper``). The modes: :mod:`asdkeras.ensemble`."""

from __future__ import annotations

import numpy as np

from asdkeras import detectors
from asdkeras.data.layout import ClipRecord, random_subset
from asdkeras.ensemble_members import Member, fusion_statistics, standardise
from asdkeras.errors import SkippedFiles
from asdkeras.scoring import combine_members


REPORT_CHOICE = {"fan": "ae", "slider": "mobilenet", "ToyCar": "ae", "ToyTrain": "ae", "gearbox": "mobilenet",
                 "valve": "mobilenet", "bearing": "ae"}
"""The report's third system: per machine type, the better of its two models on the labelled dev set."""
PAPER_STAND_IN = "gmm"
"""The member ``paper`` takes when the report's choice is not fitted: the one fitted without labels or outliers."""

FUSIONS = {"fuse-mean": "mean", "fuse-max": "max"}
"""Battery candidates that fuse every member, and how."""

def member_views(member: Member) -> set[str]:
    """The fault families a member's score keeps ("steady", "transient"), as its fit recorded them."""
    return set(member.detector.info.get("views") or member.detector.info.get("pooling", {}).get("views") or ())


def judges_per_condition(member: Member) -> bool:
    """Whether a member scores each clip against normals of its own operating condition (its fit says so)."""
    return bool(member.detector.info.get("judged_per_condition"))


def battery_candidates(members: list[Member], scores: dict[str, tuple[np.ndarray, dict]]) -> dict[str, dict]:
    """Battery figures of every member alone and of every fusion of all members, from their battery
    scores (:func:`candidate_scores`), in the order a battery tie goes: the members by their kind's
    ``tie_rank`` (the GMM, the AE, MobileNetV2), then the fusions."""
    from asdkeras import battery

    candidates = {}
    ranked = {m.kind: m for m in members}
    for member in (ranked[kind] for kind in detectors.by_tie_rank(ranked)):  # a battery tie goes to the first
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


def battery_figures(members: list[Member], held_out: list[ClipRecord], data_dir: str, subset: str, machine: str,
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


def paper_choice(machine: str, available: list[str]) -> tuple[str, str]:
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
