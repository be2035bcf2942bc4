"""Peak resident memory and wall time of ``python cli.py fit`` in a child process.

    .venv/bin/python benchmarks/fit_memory.py --data data/full --machine gearbox --epochs 3

Reports the child's peak RSS (``ru_maxrss``) and, for comparison, what the full feature set
of the clips it trained on would occupy held in RAM as float64 vectors (the baseline's way).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from report_json import emit  # noqa: E402
from asdkeras.names import CACHE_DIR, DETECTOR_FILE, detector_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--machine", default="gearbox")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--models-dir", default="saved_models/benchmark")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    command = [sys.executable, os.path.join(REPO, "cli.py"), "fit", "--machine", args.machine, "--data", args.data,
               "--epochs", str(args.epochs), "--cache-dir", args.cache_dir, "--models-dir", args.models_dir]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"fit failed:\n{completed.stderr[-2000:]}")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with open(os.path.join(detector_dir(args.models_dir, args.machine, "ae"), DETECTOR_FILE)) as handle:
        clips = json.load(handle)["clips"]
    total_clips = sum(clips.values())
    result = {
        "command": " ".join(command[1:]),
        "clips": clips,
        "peak_rss_mib": round(peak_mib),
        "wall_seconds": round(seconds),
        "float64_feature_set_mib": round(total_clips * 309 * 640 * 8 / 2 ** 20),
        "last_lines": completed.stdout.strip().splitlines()[-1:],
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
