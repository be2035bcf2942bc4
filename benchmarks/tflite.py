"""TFLite variants of saved detectors: official score, size and latency against the Keras model.

    .venv/bin/python benchmarks/tflite.py --data /tmp/bench/small --models-dir /tmp/bench/models \
        --variants ae-oe,mobilenet-imagenet --out-dir /tmp/bench/tflite --cache-dir /tmp/bench/cache

For each machine type and saved detector (``<models-dir>/<machine>/<variant>/``): export every
quantisation, feature-in and waveform-in, as ``export-tflite`` does; score the test split with
each file through the TFLite interpreter alone (:mod:`asdkeras.lite`, as ``score`` does) and
compute the official score as ``test`` does; time one inference per 10 s clip, median of
``--runs`` runs after ``--warmup``, on one thread and on all threads, for the feature-in model
(the network alone), the waveform-in model, and the front-end alone (its share). Prints
Markdown tables and writes all figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from asdkeras.audio import load_clip  # noqa: E402
from asdkeras.data.layout import scan_split  # noqa: E402
from asdkeras.evaluate import write_evaluation  # noqa: E402
from asdkeras.detector import Detector  # noqa: E402
from asdkeras.conversion import frontend_model  # noqa: E402
from asdkeras.export import export_folder  # noqa: E402
from asdkeras.kinds import INTEGER_QUANTISATIONS, QUANTISATIONS  # noqa: E402
from asdkeras.names import CACHE_DIR, DETECTOR_FILE, INT8, TFLITE_DIR, saved_variants, tflite_name, variant_result_name  # noqa: E402
from asdkeras.lite import LiteDetector  # noqa: E402


def median_ms(model_content: bytes | None, path: str | None, feed: dict, threads: int, warmup: int, runs: int) -> float:
    """Median wall time in ms of one ``score`` call (interpreter built once, input set each call)."""
    interpreter = tf.lite.Interpreter(model_content=model_content, model_path=path, num_threads=threads)
    runner = interpreter.get_signature_runner("score")
    for _ in range(warmup):
        runner(**feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        runner(**feed)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def benchmark_detector(folder: str, args) -> dict:
    """Every variant of one detector against its Keras model: the detector's, or for the integer
    variants of a detector with a quantisation-aware twin, the twin's (what they are converted from)."""
    variant = os.path.basename(folder)
    out_dir = os.path.join(args.out_dir, variant)
    detector, _ = export_folder(folder, out_dir, QUANTISATIONS, args.cache_dir, args.data)
    twin_folder = saved_variants(folder).get(INT8)
    records = scan_split(args.data, detector.machine, "test")
    clips = [load_clip(r.path) for r in records]
    cached = detector.frontend.cache(args.cache_dir).ensure([r.path for r in records])
    features = [batch for batches in detector.frontend.dataset(cached) for batch in batches.numpy()]
    references = {}
    for name, keras_detector in ((variant, detector),
                                 *(((variant_result_name(variant, INT8), Detector.load(twin_folder)),) if twin_folder else ())):
        scores = keras_detector.score_files([r.path for r in records], args.cache_dir)
        evaluation = write_evaluation(detector.machine, name, records, scores, keras_detector.decide(scores),
                                      keras_detector.threshold, os.path.join(args.result_dir, variant))
        references[name] = (keras_detector.decide(scores), evaluation.official_score)
    keras_official = references[variant][1]
    result = {"keras_official": keras_official, "variants": {},
              "int8_twin_official": references[variant_result_name(variant, INT8)][1] if twin_folder else None}
    clip = clips[0][np.newaxis]
    feature_input = detector.frontend.from_waveforms(clip).numpy()
    threads_all = os.cpu_count() or 1
    for quantisation in QUANTISATIONS:
        for waveform in (False, True):
            name = tflite_name(detector.machine, detector.kind, quantisation, waveform)
            path = os.path.join(out_dir, name)
            lite = LiteDetector(path, threads=1)
            if waveform:
                scores = np.array([lite.score_clip(c) for c in clips])
            else:  # the cached features are the front-end's output (a test holds the two equal)
                scores = np.array([lite.runner(features=f[np.newaxis])["score"][0] for f in features], np.float64)
            decisions = (scores > lite.threshold).astype(int)
            evaluation = write_evaluation(detector.machine, f"{variant}-{quantisation}{'-waveform' if waveform else ''}",
                                          records, scores, decisions, lite.threshold,
                                          os.path.join(args.result_dir, TFLITE_DIR, variant))
            feed = {"waveform": clip} if waveform else {"features": feature_input}
            if lite.input_spec["dtype"] != "float32":
                continue
            reference = variant if not twin_folder or quantisation not in INTEGER_QUANTISATIONS else variant_result_name(variant, INT8)
            keras_decisions, keras_official = references[reference]
            result["variants"][name] = {
                "official": evaluation.official_score,
                "keras_official": keras_official,
                "reference": reference,
                "same_decision": float(np.mean(decisions == keras_decisions)),
                "size_kb": os.path.getsize(path) / 1024,
                "ms_1_thread": median_ms(None, path, feed, 1, args.warmup, args.runs),
                "ms_all_threads": median_ms(None, path, feed, threads_all, args.warmup, args.runs),
            }
            print(f"{name:42s} official {evaluation.official_score:.3f} (Keras {keras_official:.3f}) "
                  f"{result['variants'][name]['ms_1_thread']:.2f} ms", flush=True)
    front = frontend_model(detector.frontend)
    result["frontend_ms_1_thread"] = median_ms(front, None, {"waveform": clip}, 1, args.warmup, args.runs)
    result["frontend_ms_all_threads"] = median_ms(front, None, {"waveform": clip}, threads_all, args.warmup, args.runs)
    return result


def markdown(results: dict) -> str:
    lines = ["| machine | detector | variant | official (Keras) | same decision | size kB | network ms 1 thr / all "
             "| waveform model ms 1 thr / all | front-end ms 1 thr |", "|---|---|---|---|---|---|---|---|---|"]
    for machine, by_variant in results.items():
        for variant, r in by_variant.items():
            for quantisation in QUANTISATIONS:
                net = r["variants"][tflite_name(machine, variant.split('-')[0], quantisation, False)]
                wav = r["variants"][tflite_name(machine, variant.split('-')[0], quantisation, True)]
                lines.append(f"| {machine} | {variant} | {quantisation} | {net['official']:.3f} / {wav['official']:.3f} "
                             f"({net.get('keras_official', r['keras_official']):.3f}"
                             f"{' twin' if net.get('reference', variant) != variant else ''}) | {net['same_decision']:.3f} / {wav['same_decision']:.3f} | "
                             f"{net['size_kb']:.0f} / {wav['size_kb']:.0f} | {net['ms_1_thread']:.2f} / "
                             f"{net['ms_all_threads']:.2f} | {wav['ms_1_thread']:.2f} / {wav['ms_all_threads']:.2f} | "
                             f"{r['frontend_ms_1_thread']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--variants", default="ae-oe,mobilenet-imagenet")
    parser.add_argument("--machines", default=None, help="Comma-separated [default: every machine folder].")
    parser.add_argument("--out-dir", default="/tmp/bench/tflite")
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--result-dir", default="/tmp/bench/results")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", default="/tmp/bench/results/tflite.json")
    args = parser.parse_args()
    machines = args.machines.split(",") if args.machines else sorted(os.listdir(args.models_dir))
    results: dict = {}
    for machine in machines:
        for variant in args.variants.split(","):
            folder = os.path.join(args.models_dir, machine, variant)
            if os.path.isfile(os.path.join(folder, DETECTOR_FILE)):
                results.setdefault(machine, {})[variant] = benchmark_detector(folder, args)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)
    print(markdown(results))


if __name__ == "__main__":
    main()
