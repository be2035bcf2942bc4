"""The battery's own sampling error: is a fusion's lead over the GMM on the battery more than noise?

    .venv/bin/python benchmarks/battery_error.py --models-dir /tmp/exp12/saved_models --data /tmp/exp12/data \
        --machines fan,bearing,ToyTrain,valve,ToyCar

Re-runs the ensemble's pseudo-anomaly battery on a machine type's saved members (the clips, kinds
and other machine types that ``fit --model ensemble`` uses), then resamples its normal clips with
their altered copies (paired across candidates) and prints, for each fusion of all members, its
battery mean minus the GMM's with the bootstrap standard deviation of that difference
(:func:`asdkeras.battery.lead_errors`, which ``battery`` mode's ties use).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from asdkeras import battery  # noqa: E402
from asdkeras.ensemble_choice import FUSIONS, battery_candidates, battery_scores, candidate_scores  # noqa: E402
from asdkeras.ensemble_members import load_members, shared_held_out  # noqa: E402
from asdkeras.errors import SkippedFiles  # noqa: E402

SINGLE = "gmm"


def leads(models_dir: str, data_dir: str, machine: str, resamplings: int, seed: int = 1) -> dict[str, tuple]:
    """Fusion name -> (its battery mean - the GMM's, bootstrap sd of that difference)."""
    members = load_members(models_dir, machine)
    for member in members:
        member.config.data_dir = data_dir
    held_out, _ = shared_held_out(members)
    outliers = {m.detector.info.get("outlier") for m in members} - {None}
    normal, altered, _ = battery_scores(members, held_out, data_dir, members[0].config.subset, machine, outliers,
                                        members[0].detector.frontend.channel, SkippedFiles.or_strict(None))
    scores = candidate_scores(members, normal, altered)
    means = {name: figures["mean"] for name, figures in battery_candidates(members, scores).items()}
    errors = battery.lead_errors({name: scores[name] for name in (SINGLE, *FUSIONS)}, SINGLE, resamplings, seed)
    return {name: (means[name] - means[SINGLE], errors[name]) for name in FUSIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--machines", required=True)
    parser.add_argument("--resamplings", type=int, default=300)
    args = parser.parse_args()
    for machine in args.machines.split(","):
        figures = leads(args.models_dir, args.data, machine, args.resamplings)
        print(f"{machine:9s} " + " | ".join(f"{name} - {SINGLE} {lead:+.3f} (sd {sd:.3f}, {lead / sd:.1f} sd)"
                                            for name, (lead, sd) in figures.items()), flush=True)


if __name__ == "__main__":
    main()
