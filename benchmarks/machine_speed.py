"""How fast this machine is today, in three numbers, so that suite and demo times from different
days can be compared (the same code's fast lane took 1 min 49 s one day and 3 min 36 s another,
on the same kind of 2-core machine).

    .venv/bin/python benchmarks/machine_speed.py

Prints, each the best of three runs:

* ``python``: seconds for 20 million iterations of a pure-Python loop (tracing graphs, the
  battery and the test harness are Python-bound);
* ``numpy``: GFLOP/s of a 1000 x 1000 float32 matrix product on every core;
* ``trace``: seconds for the first call of a 0.35-width MobileNetV2 at 64 px with its int8 twin
  (tracing and graph optimisation, one thread, as a test worker computes), and ``run`` the
  second call (32 images).
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.processes import limit_threads  # noqa: E402

limit_threads(1)  # one thread, as a test worker computes


def python_loop() -> float:
    start = time.perf_counter()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.perf_counter() - start


def numpy_gflops() -> float:
    import numpy as np

    a = np.random.default_rng(0).random((1000, 1000), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(20):
        a @ a
    return 20 * 2e9 / (time.perf_counter() - start) / 1e9


def twin_trace() -> tuple[float, float]:
    import keras
    import numpy as np
    import tensorflow as tf

    from asdkeras.models.inference import predict
    from asdkeras.models.mobilenet import build_mobilenet
    from asdkeras.models.quantise import calibrate_ranges, quantisation_aware

    keras.utils.set_random_seed(0)
    model = build_mobilenet(64, 0.35, None)
    images = np.random.default_rng(0).uniform(0, 255, (32, 64, 64, 3)).astype(np.float32)
    twin, _ = quantisation_aware(model)
    calibrate_ranges(model, twin, tf.data.Dataset.from_tensor_slices(images).batch(16))
    start = time.perf_counter()
    predict(twin, images)
    first = time.perf_counter() - start
    start = time.perf_counter()
    predict(twin, images)
    return first, time.perf_counter() - start


def main() -> None:
    python = min(python_loop() for _ in range(3))
    gflops = max(numpy_gflops() for _ in range(3))
    first, run = twin_trace()
    print(f"python {python:.2f} s   numpy {gflops:.0f} GFLOP/s   trace {first:.1f} s   run {run:.2f} s")


if __name__ == "__main__":
    main()
