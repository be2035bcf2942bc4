"""When does tracing a MobileNetV2 train step cost more than running it eagerly?

``keras.Model.fit`` traces its train step into a graph before the first batch: for MobileNetV2
and its int8 twin that trace is seconds to tens of seconds of Python, paid once per compiled
phase (the head, the fine-tuning, the twin), whatever the number of steps. Run eagerly, a step
pays its Python per op instead, on every step. With few steps (a handful of clips,
tiny test fits) the trace is most of the fit.

For each phase this prints, in seconds: ``trace`` (a graph fit's first step minus a later step),
``graph`` and ``eager`` (one step, once the model has run a step), and ``break-even`` steps (trace divided by
the eager step's excess over the graph step): below it eager is faster.

    .venv/bin/python benchmarks/eager_training.py                      # the demo's network: 0.35, 176 px, batch 8
    .venv/bin/python benchmarks/eager_training.py --width 1.0 --image-size 320 --batch-size 32  # the CLI's defaults

One thread (``--threads``), as a test worker computes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.processes import limit_threads  # noqa: E402

STEPS = 6
"""Steps timed after the first fit."""


def timed_fits(network, data, eager: bool, learning_rate: float = 1e-4) -> tuple[float, float]:
    """Seconds of a fit of one batch, compiled afresh (with the graph's trace), then of one step of
    a further fit of :data:`STEPS` batches by the same compiled model (no new trace)."""
    import keras

    network.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", run_eagerly=eager)
    start = time.perf_counter()
    network.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    network.fit(data, epochs=1, steps_per_epoch=STEPS, verbose=0)
    return first, (time.perf_counter() - start) / STEPS


def phase_figures(make_network, data) -> dict[str, float]:
    """Trace, graph step, eager step (s) and break-even steps of one phase's network."""
    graph_first, graph = timed_fits(make_network(), data, eager=False)
    _, eager = timed_fits(make_network(), data, eager=True)
    trace = graph_first - graph
    excess = eager - graph
    return {"trace": trace, "graph": graph, "eager": eager,
            "break-even": trace / excess if excess > 0 else float("inf")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=float, default=0.35)
    parser.add_argument("--image-size", type=int, default=176)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    limit_threads(args.threads)

    import numpy as np
    import tensorflow as tf

    from asdkeras.models.mobilenet import build_mobilenet, unfreeze_top_blocks
    from asdkeras.models.quantise import quantisation_aware

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4 * args.batch_size, args.image_size, args.image_size, 3)).astype(np.float32)
    labels = rng.integers(0, 2, len(images)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(args.batch_size).repeat()

    def head():
        return build_mobilenet(args.image_size, args.width, "imagenet")

    def fine_tune():
        network = head()
        unfreeze_top_blocks(network, 3)
        return network

    def twin():
        return quantisation_aware(head())[0]

    print(f"MobileNetV2 width {args.width:g}, {args.image_size} px, batch {args.batch_size}, "
          f"{args.threads} thread(s); seconds, and steps below which eager is faster")
    print("| phase | trace | graph step | eager step | break-even steps |")
    print("|---|---|---|---|---|")
    for name, make in (("head", head), ("fine-tuning", fine_tune), ("int8 twin", twin)):
        f = phase_figures(make, data)
        print(f"| {name} | {f['trace']:.1f} | {f['graph']:.2f} | {f['eager']:.2f} | {f['break-even']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
