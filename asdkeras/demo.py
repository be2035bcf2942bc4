"""The demo: the whole system on one dataset, machine type by machine type, each in its own process.

Per machine type: every kind is fitted with its demo settings (:attr:`DetectorKind.demo_options`),
then the ensemble; all of them (and the int8 twins) are tested; the ensemble is exported as an
int8 waveform-in TFLite model and the test clips are scored with that file alone; one table of
decisions sums it up. Each machine type runs in a process of its own, and each of those steps
(a kind's fit, the ensemble's, the tests, the export) in a fresh process under it
(:func:`~asdkeras.processes.in_fresh_process`), so a step's memory is returned when it ends: one
process held 4-6 GB over seven types; a type's process, fitting and testing everything, 1.9-2.2
GB; the export alone took it past 2 GB (BENCHMARKS.md, "The demo").
Four types run at a time, each computing on its share of the cores
(:func:`~asdkeras.processes.threads_per_process`), since part of a type's work (decoding, the
battery, tracing graphs, conversion) is single-threaded: on 2 cores, three at a time with
TensorFlow's default pools took 19 min 4 s at 176 % CPU, four with one thread each 14-15
minutes at 191-194 % (BENCHMARKS.md, "The demo").
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from asdkeras import detectors
from asdkeras.errors import SkippedFiles, show_notes
from asdkeras.kinds import DEFAULT_ENSEMBLE_MODE, ENSEMBLE
from asdkeras.names import (CACHE_DIR, DATA_DIR, DEV_DATA, MODELS_DIR, RESULT_DIR, TFLITE_DIR, detector_dir,
                            tflite_scores_csv)
from asdkeras.processes import in_fresh_process, process_pool, threads_per_process

if TYPE_CHECKING:
    from asdkeras.metrics import Evaluation


@dataclass(frozen=True)
class DemoSettings:
    """What the demo fits with and where it writes.

    Attributes
    ----------
    epochs : int
        Autoencoder maximum epochs (6 here; the default fit's is 30).
    width : float
        MobileNetV2 width multiplier (0.35: the smallest with ImageNet weights).
    image_size : int
        MobileNetV2 spectrogram image side, pixels (the report's 320; 176 here, to shorten the
        demo: MobileNetV2 was half of a type's time at 224 px, and its work scales with the pixels.
        Sizes Keras publishes weights for (96-224) need their own files; any other loads the
        224 px ones, as the report's 320 does).
    mobilenet_epochs : int
        MobileNetV2 epochs of each phase (head, then fine-tuning; 3 here, the default fit's 5).
    mobilenet_batch_size : int
        MobileNetV2 images per batch: training activations grow with it (batches of 32 at 320 px
        held 7.6 GB; with batches of 8 at 224 px the largest process held 2.4-2.6 GB).
    augmented_clips : int
        MobileNetV2's augmented training clips (PitchShift and TimeStretch copies; the default fit
        makes twice its training clips, 300 here, which took longer than the fit itself; 25 here).
    int8_epochs : int
        Quantisation-aware epochs of MobileNetV2's int8 twin.
    processes : int
        Machine types run at the same time, each in its own process (4 on 2 cores: the largest
        process, a MobileNetV2 fit with its twin, 1.93 GB in session 10's run).
    """

    data: str = DATA_DIR
    epochs: int = 6
    width: float = 0.35
    image_size: int = 176
    mobilenet_epochs: int = 3
    mobilenet_batch_size: int = 8
    augmented_clips: int = 25
    int8_epochs: int = 1
    processes: int = 4
    models_dir: str = MODELS_DIR
    result_dir: str = RESULT_DIR
    cache_dir: str = CACHE_DIR
    tflite_dir: str = TFLITE_DIR

    def __post_init__(self):
        if (self.epochs < 1 or self.mobilenet_epochs < 1 or self.image_size < 32 or self.width <= 0
                or self.mobilenet_batch_size < 1 or self.processes < 1 or self.augmented_clips < 0
                or self.int8_epochs < 1):
            raise ValueError(f"demo settings out of range. Received: epochs={self.epochs}, "
                             f"mobilenet_epochs={self.mobilenet_epochs}, image_size={self.image_size}, "
                             f"width={self.width}, mobilenet_batch_size={self.mobilenet_batch_size}, "
                             f"augmented_clips={self.augmented_clips}, int8_epochs={self.int8_epochs}, "
                             f"processes={self.processes}")


@dataclass(frozen=True)
class MachineOutcome:
    """What one machine type's run returns to the parent: its table, what it chose and scored (lines
    for the user), the files it could not read (path -> message) and its time in seconds."""

    machine: str
    table: str
    lines: list
    skipped: dict
    seconds: float


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StepOutcome:
    """What a step run in its own process returns: its result, its lines for the user and the files
    it could not read (path -> message)."""

    result: object
    lines: list
    skipped: dict


def _skipped_files():
    return SkippedFiles(report=lambda message: _say(f"error: {message}"))


def run_machine(machine: str, settings: DemoSettings) -> MachineOutcome:
    """Fit, test, export and score one machine type, each step in a fresh process; returns its table.

    This process imports no TensorFlow: it holds no model between the steps.
    """
    from asdkeras.metrics import format_decision_summary
    from asdkeras.jobs import FitJob

    started = time.perf_counter()
    skipped = _skipped_files()
    options = asdict(settings)
    where = dict(data=settings.data, models_dir=settings.models_dir, cache_dir=settings.cache_dir)
    threads = threads_per_process(settings.processes)

    def step(function, *args) -> StepOutcome:
        outcome = in_fresh_process(function, *args)
        skipped.messages.update(outcome.skipped)
        return outcome

    for kind in detectors.model_kinds():
        _say(f"\n== {machine}: fitting {kind}")
        spec = detectors.get(kind)
        kind_options = spec.demo_options(options)
        if "workers" in spec.option_names():  # a kind's worker pool shares the process's cores too
            kind_options = {"workers": threads, **kind_options}
        for line in step(fit_step, FitJob(machine, kind, kind_options, **where)).lines:
            _say(line)
    ensemble = step(fit_step, FitJob(machine, ENSEMBLE, {"mode": DEFAULT_ENSEMBLE_MODE, "combine": "mean"}, **where))
    lines = [f"{machine}: {ensemble.result}"]
    rows = step(evaluate_step, machine, settings).result
    lines += [f"note: {note}" for note in dict.fromkeys(note for row in rows for note in row.notes)]  # as test says them
    _say(f"== {machine}: exporting the ensemble to int8 TFLite and scoring the test clips with it alone")
    exported = step(export_and_score, machine, settings)
    rows.append(exported.result)
    lines += exported.lines
    return MachineOutcome(machine, format_decision_summary(rows), lines, dict(skipped.messages),
                          round(time.perf_counter() - started, 1))


def fit_step(job) -> StepOutcome:
    """Fit one :class:`~asdkeras.jobs.FitJob` and save it; its lines are said here as the command
    line says them (an ensemble's result: the sentence describing its choice)."""
    from asdkeras.ensemble_choice import describe_choice
    from asdkeras.jobs import job_lines, run_job

    show_notes()  # in the child process as on the command line
    skipped = _skipped_files()
    detector = run_job(job, skipped)
    lines = job_lines(job, detector)
    if job.kind != ENSEMBLE:
        return StepOutcome(None, lines, dict(skipped.messages))
    return StepOutcome(describe_choice(detector.info["ensemble"]), [], dict(skipped.messages))


def evaluate_step(machine: str, settings: DemoSettings) -> StepOutcome:
    """Test every detector of the machine and its variants; the result: their evaluations."""
    from asdkeras.evaluate import evaluate_with_variants

    show_notes()
    skipped = _skipped_files()
    rows = []
    for kind in detectors.detector_kinds():
        rows += evaluate_with_variants(detector_dir(settings.models_dir, machine, kind), machine, kind, settings.data,
                                       settings.result_dir, settings.cache_dir, skipped=skipped)
    return StepOutcome(rows, [], dict(skipped.messages))


def export_and_score(machine: str, settings: DemoSettings) -> StepOutcome:
    """Export the machine's ensemble as an int8 waveform-in TFLite model and score its test clips
    with that file alone; the result: that run's evaluation."""
    from asdkeras.data.layout import audio_files
    from asdkeras.evaluate import evaluate_scored
    from asdkeras.export import export_folder, official_score_of, variant_scores_of
    from asdkeras.lite import LiteDetector, score_paths, write_scored_csv

    show_notes()
    skipped = _skipped_files()
    _, files = export_folder(detector_dir(settings.models_dir, machine, ENSEMBLE), settings.tflite_dir, ["int8"],
                             settings.cache_dir, settings.data,
                             official_score=official_score_of(settings.result_dir, ENSEMBLE, machine),
                             variant_scores=variant_scores_of(settings.result_dir, ENSEMBLE, machine))
    lite = LiteDetector(files[0].path)
    clips = audio_files([os.path.join(settings.data, DEV_DATA, machine, "test")])
    scored = score_paths(lite, clips, skipped.add)
    lite_results = os.path.join(settings.result_dir, TFLITE_DIR)
    write_scored_csv(tflite_scores_csv(lite_results, machine, ENSEMBLE, "int8"), scored)
    evaluation = evaluate_scored(lite.sidecar, scored, [p for p in clips if p in skipped], lite_results)
    return StepOutcome(evaluation, [f"scored {len(scored)} clips with {files[0].path}: "
                                    f"{sum(c.decision for c in scored)} anomalies (threshold {lite.threshold:.4g})"],
                       dict(skipped.messages))


def _child(machine: str, settings: DemoSettings) -> MachineOutcome:
    show_notes()  # in the child process as on the command line
    return run_machine(machine, settings)


def run_demo(machines: list[str], settings: DemoSettings, on_table=lambda outcome: None) -> list[MachineOutcome]:
    """:func:`run_machine` for each machine type in a fresh process, ``settings.processes`` at a time,
    each computing on its share of the cores (:func:`threads_per_process`).

    ``on_table`` is called with each :class:`MachineOutcome` in the order of ``machines``. A
    type's error (:class:`~asdkeras.errors.AsdError`) stops the demo with that one-line message.
    """
    outcomes = []
    with process_pool(settings.processes, tasks_per_child=1) as pool:  # each type's models leave with its process
        futures = [pool.submit(_child, machine, settings) for machine in machines]
        try:
            for future in futures:
                outcome = future.result()
                outcomes.append(outcome)
                on_table(outcome)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return outcomes
