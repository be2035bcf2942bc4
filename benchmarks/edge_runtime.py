"""The edge runtime against ``score``: decisions, score differences, latency and size (issue 19).

For every waveform-in ``.tflite`` file of a folder:

* **agreement**: ``python -m asdkeras.edge`` in the LiteRT environment (``.venv-edge``), on
  TFLite's builtin kernels and on LiteRT's default XNNPack delegate, against what ``python cli.py
  score`` decides in the TensorFlow environment (:func:`asdkeras.lite.run_scoring`, the sidecar's
  kernels): largest score difference and the number of decisions that differ;
* **latency**: milliseconds per 10 s clip on one thread (the decoded clip fed to the model; median
  over the clips), in LiteRT with and without XNNPack and in TensorFlow's ``tf.lite``;
* **size** of each file, and the edge environment's installed size.

Run from the repository root with the TensorFlow environment's Python::

    .venv/bin/python benchmarks/edge_runtime.py --tflite-dir tflite --clips data/dev_data/fan/test --out edge.json

The script runs itself inside the edge environment for LiteRT's figures (``--latency-only``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.audio import load_clip  # noqa: E402
from asdkeras.data.layout import audio_files  # noqa: E402
from asdkeras.lite import LiteDetector  # noqa: E402

EDGE_PYTHON = os.path.join(".venv-edge", "bin", "python")


def latency_ms(model: str, clips: list[np.ndarray], kernels: str) -> tuple[float, str]:
    """Median milliseconds of one ``score_clip`` on one thread (after one warm-up call), and the runtime's name."""
    detector = LiteDetector(model, threads=1, kernels=kernels)
    detector.score_clip(clips[0])
    times = []
    for clip in clips:
        start = time.perf_counter()
        detector.score_clip(clip)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), detector.runtime


def latencies(models: list[str], paths: list[str], count: int) -> dict:
    """model -> kernels -> {"ms", "runtime"} in the environment this runs in."""
    out = {}
    for model in models:
        side = LiteDetector(model).sidecar
        clips = [load_clip(p, side["frontend"].get("channel"), side["sample_rate"], side["clip_samples"])
                 for p in paths[:count]]
        out[model] = {}
        for kernels in ("builtin", "xnnpack"):
            ms, runtime = latency_ms(model, clips, kernels)
            out[model][kernels] = {"ms": ms, "runtime": runtime}
    return out


def edge_scores(model: str, paths: list[str], kernels: str, edge_python: str) -> dict[str, tuple[float, int]]:
    """path -> (score, decision) from ``python -m asdkeras.edge`` in the edge environment."""
    result = subprocess.run([edge_python, "-m", "asdkeras.edge", *paths, "--tflite", model, "--threads", "1",
                             "--kernels", kernels], capture_output=True, text=True)
    if result.returncode not in (0, 1):
        raise SystemExit(result.stderr)
    rows = [line.rsplit(",", 2) for line in result.stdout.splitlines()]
    return {path: (float(score), int(decision == "anomaly")) for path, score, decision in rows}


def agreement(models: list[str], paths: list[str], edge_python: str) -> dict:
    """model -> kernels -> largest |edge - score| and decisions that differ, against ``score``'s run."""
    from asdkeras.lite import run_scoring

    out = {}
    for model in models:
        reference = {c.path: (c.score, c.decision) for c in run_scoring(paths, model, threads=1).scored}
        scale = max(abs(s) for s, _ in reference.values())
        out[model] = {"kernels": LiteDetector(model).kernels, "clips": len(reference)}
        for kernels in ("builtin", "xnnpack"):
            edge = edge_scores(model, paths, kernels, edge_python)
            diffs = [abs(edge[p][0] - s) for p, (s, _) in reference.items()]
            out[model][kernels] = {"max_abs_diff": max(diffs), "max_rel_diff": max(diffs) / scale,
                                   "decisions_differ": sum(edge[p][1] != d for p, (_, d) in reference.items())}
    return out


def installed_mb(folder: str) -> float:
    total = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names
                if not os.path.islink(os.path.join(root, name)))
    return total / 1e6


def table(models: list[str], agree: dict, tf_latency: dict, edge_latency: dict) -> str:
    rows = ["| model | MB | sidecar kernels | edge builtin: max diff (rel), flips | edge XNNPack: max diff (rel), flips "
            "| ms LiteRT builtin | ms LiteRT XNNPack | ms tf.lite builtin | ms tf.lite default |",
            "|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        a = agree[model]
        cells = [f"{a[k]['max_abs_diff']:.2g} ({a[k]['max_rel_diff']:.1g}), {a[k]['decisions_differ']}/{a['clips']}"
                 for k in ("builtin", "xnnpack")]
        rows.append(f"| {os.path.basename(model)} | {os.path.getsize(model) / 1e6:.2f} | {a['kernels']} | "
                    + " | ".join(cells) + " | " + " | ".join(
                        f"{source[model][k]['ms']:.1f}" for source in (edge_latency, tf_latency)
                        for k in ("builtin", "xnnpack")) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite-dir", required=True)
    parser.add_argument("--clips", nargs="+", required=True, help="Audio files or folders.")
    parser.add_argument("--latency-clips", type=int, default=20)
    parser.add_argument("--edge-python", default=EDGE_PYTHON)
    parser.add_argument("--latency-only", action="store_true", help="Print this environment's latencies as JSON.")
    parser.add_argument("--out")
    args = parser.parse_args()
    models = sorted(glob.glob(os.path.join(args.tflite_dir, "*_waveform.tflite")))
    paths = audio_files(args.clips)
    if args.latency_only:
        print(json.dumps(latencies(models, paths, args.latency_clips)))
        return
    edge = subprocess.run([args.edge_python, os.path.abspath(__file__), "--latency-only", "--tflite-dir",
                           args.tflite_dir, "--clips", *args.clips, "--latency-clips", str(args.latency_clips)],
                          capture_output=True, text=True, check=True)
    edge_latency = json.loads(edge.stdout.strip().splitlines()[-1])
    tf_latency = latencies(models, paths, args.latency_clips)
    agree = agreement(models, paths, args.edge_python)
    print(table(models, agree, tf_latency, edge_latency))
    environment = os.path.dirname(os.path.dirname(args.edge_python))
    print(f"\nedge environment {environment}: {installed_mb(environment):.0f} MB installed; {len(paths)} clips")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"agreement": agree, "latency_tflite": tf_latency, "latency_litert": edge_latency,
                       "edge_environment_mb": installed_mb(environment), "clips": len(paths)}, handle, indent=1)


if __name__ == "__main__":
    main()
