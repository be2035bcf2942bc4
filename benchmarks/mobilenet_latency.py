"""Latency of MobileNetV2 waveform-in TFLite models at a given width and image size (untrained head).

    .venv/bin/python benchmarks/mobilenet_latency.py --width 1.0 --image-size 320 --data /tmp/bench/small

Latency does not depend on the trained weights, so the ImageNet network with a fresh head stands
in for a fitted detector; int8 is calibrated on real clips of ``--machine`` from ``--data``.
Median of ``--runs`` calls after ``--warmup``, one thread and all threads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.tflite import median_ms  # noqa: E402

from asdkeras.audio import load_clip  # noqa: E402
from asdkeras.data.layout import scan_split  # noqa: E402
from asdkeras.detector import Detector  # noqa: E402
from asdkeras.conversion import frontend_model  # noqa: E402
from asdkeras.export import export_detector  # noqa: E402
from asdkeras.names import tflite_name  # noqa: E402
from asdkeras.features import ImageConfig  # noqa: E402
from asdkeras.frontend import ImageFrontend  # noqa: E402
from asdkeras.models.mobilenet import build_mobilenet, mobilenet_scoring_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--data", required=True)
    parser.add_argument("--machine", default="fan")
    parser.add_argument("--quant", default="float32,float16,dynamic,int8")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    frontend = ImageFrontend(ImageConfig(image_size=args.image_size))
    detector = Detector(kind="mobilenet", machine=args.machine, frontend=frontend,
                        model=mobilenet_scoring_model(build_mobilenet(args.image_size, args.width, "imagenet")),
                        score_units="-logit", thresholds={"quantile": {"value": 0.0, "description": "none"}},
                        threshold_rule="quantile", normal_scores={})
    clips = [load_clip(r.path) for r in scan_split(args.data, args.machine, "train")[:40]]
    quantisations = args.quant.split(",")
    result = {}
    with tempfile.TemporaryDirectory() as out:
        export_detector(detector, out, quantisations, lambda: (frontend.from_waveforms(c[None]).numpy()[0] for c in clips),
                        lambda: iter(clips))
        feed = {"waveform": clips[0][None]}
        for quantisation in quantisations:
            path = os.path.join(out, tflite_name(args.machine, "mobilenet", quantisation, True))
            result[quantisation] = {"size_kb": os.path.getsize(path) / 1024,
                                    "ms_1_thread": median_ms(None, path, feed, 1, args.warmup, args.runs),
                                    "ms_all_threads": median_ms(None, path, feed, os.cpu_count(), args.warmup, args.runs)}
            print(quantisation, result[quantisation], flush=True)
        result["frontend_ms_1_thread"] = median_ms(frontend_model(frontend), None, feed, 1, args.warmup, args.runs)
    print(json.dumps({"width": args.width, "image_size": args.image_size, **result}, indent=2))


if __name__ == "__main__":
    main()
