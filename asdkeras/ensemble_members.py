"""The members of a per-machine ensemble: fitted detectors, the clips none of them trained on, and
the units in which their scores are fused (a new normal clip's mean and spread)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from asdkeras import detectors
from asdkeras.data.layout import ClipRecord
from asdkeras.detector import Detector
from asdkeras.detectors.config import MIN_HELD_OUT
from asdkeras.errors import AsdError
from asdkeras.fit import load_config
from asdkeras.names import DETECTOR_FILE, detector_dir
from asdkeras.scoring import fused_normal_statistics


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
    return (np.asarray(scores, np.float64) - statistics["mean"]) / spread(statistics)


def spread(statistics: dict) -> float:
    """``statistics['std']``, floored above 0 (a member whose normal scores do not vary)."""
    return max(float(statistics["std"]), 1e-12)


def fusion_statistics(member: Member) -> dict:
    """Mean and spread of a new normal clip's score of ``member``, by which fusions standardise it.

    A member judged per condition with a prediction threshold (the networks, whichever of their
    rules decides) is already in those units (a member of several such views fused, the AE's
    ``mean+peak`` or the GMM's poolings: their fusion's mean and spread,
    :func:`asdkeras.scoring.fused_normal_statistics`): each condition's scores are standardised and
    widened for a new clip, so a new normal's score is ``(0, 1)`` by construction. Its
    ``normal_scores`` would understate the spread, because the held-out clips they come from also
    set the conditions' statistics (bearing's autoencoder: 0.71, against 1.0-1.6 on test
    normals). Any other member: the statistics of its held-out or out-of-fold normal scores
    (``normal_scores``).
    """
    records = member.detector.thresholds.values()
    if any(record.get("rule") == "condition-prediction" for record in records):
        return {"mean": 0.0, "std": 1.0, "from": "judged per condition: a new normal clip's score is (0, 1)"}
    views = [r for r in records if r.get("rule") == "fused-prediction" and "combine" in r]
    if views:  # views of one detector, each judged per condition, then fused (AE mean+peak, GMM poolings)
        normal = views[0].get("new_normal")  # recorded at fit; detectors saved before it: the same draws again
        mean, std = ((normal["mean"], normal["std"]) if normal
                     else fused_normal_statistics(views[0]["correlation"]["used"], views[0]["combine"]))
        return {"mean": mean, "std": std, "from": f"views judged per condition, each (0, 1), fused by their "
                                                  f"{views[0]['combine']} with the correlation of its threshold"}
    statistics = member.detector.normal_scores
    return {"mean": float(statistics["mean"]), "std": float(statistics["std"]),
            "from": statistics.get("clips", "held-out normal clip scores")}
