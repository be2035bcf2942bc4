"""Ray against the local loop: scoring throughput and the fit wall time of several machine types.

* **score**: clips per second of one TFLite model over the same files, the local loop
  (``python cli.py score``) against ``--ray`` with 1 and 2 workers (actors with one interpreter
  each; their start-up counted, the Ray instance's start-up not);
* **fit**: wall time of fitting one kind for several machine types one after another in one
  process (``fit --machine a,b,c``) against one Ray task each (``--ray local``).

Run from the repository root on an otherwise idle machine::

    .venv/bin/python benchmarks/ray_throughput.py --tflite tflite/fan_ae_int8_waveform.tflite \\
        --clips data/dev_data/fan/test --data data --machines fan,gearbox,valve,slider --kind gmm
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.data.layout import audio_files  # noqa: E402
from asdkeras.distributed import fit_jobs, ray_scorer  # noqa: E402
from asdkeras.jobs import plan, run_job  # noqa: E402
from asdkeras.lite import run_scoring  # noqa: E402


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite", required=True)
    parser.add_argument("--clips", nargs="+", required=True)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--data", required=True)
    parser.add_argument("--machines", required=True)
    parser.add_argument("--kind", default="gmm")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance.")
    parser.add_argument("--out")
    args = parser.parse_args()
    import ray

    paths = audio_files(args.clips)
    figures = {"clips": len(paths), "model": args.tflite}
    seconds, _ = timed(lambda: ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False))
    figures["ray_start_seconds"] = seconds
    seconds, run = timed(lambda: run_scoring(paths, args.tflite, threads=1))
    figures["score_local"] = {"seconds": seconds, "clips_per_second": len(run.scored) / seconds}
    reference = [(c.path, c.score) for c in run.scored]
    for workers in (int(w) for w in args.workers.split(",")):
        seconds, run = timed(lambda: run_scoring(paths, args.tflite, threads=1,
                                                 scorer=ray_scorer("local", workers=workers)))
        assert [(c.path, c.score) for c in run.scored] == reference, "Ray scored differently"
        figures[f"score_ray_{workers}"] = {"seconds": seconds, "clips_per_second": len(run.scored) / seconds}
    machines = args.machines.split(",")
    with tempfile.TemporaryDirectory() as work:
        def jobs(folder):
            return plan(machines, args.kind, {}, None, None, 0, args.data, os.path.join(work, folder), args.cache_dir)

        seconds, _ = timed(lambda: [run_job(job) for job in jobs("serial")])
        figures["fit_serial_seconds"] = seconds
        seconds, _ = timed(lambda: fit_jobs(jobs("ray"), "local"))
        figures["fit_ray_seconds"] = seconds
    figures["fit"] = {"kind": args.kind, "machines": machines}
    ray.shutdown()
    print(json.dumps(figures, indent=1))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
