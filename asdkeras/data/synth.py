"""The embedded default dataset: synthetic machine sounds in the exact DCASE 2022 Task 2 layout.

Every machine type has three sections (00-02). In each section one recording parameter
(speed, load, background noise, SNR, microphone, room, valve pattern) differs between the
source and the target domain; the target domain has only 10 training clips per section, as in
DCASE. Anomalies are machine-specific faults of random severity. File names carry the
attributes that produced the clip (``section_00_source_train_normal_0003_volt_1.0_wt_100.wav``).

Generation is deterministic for a seed: each clip's random stream is derived from the seed and
the clip's name, so a clip does not change when other machines or counts are added.
"""

from __future__ import annotations

import os
import shutil
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import numpy as np

from asdkeras.audio import CLIP_SAMPLES, SAMPLE_RATE, write_wav_atomic
from asdkeras.data.layout import MACHINE_TYPES
from asdkeras.data.synth_sounds import (FAULT_SHARES, LEVEL_JITTER_DB, MACHINE_MODELS, RECORDING_LEVEL_DB, Condition,
                                        render)
from asdkeras.errors import AsdError
from asdkeras.names import DEV_DATA
from asdkeras.processes import map_in_processes


@dataclass(frozen=True)
class Scale:
    """Clip counts per section: source and target training normals, and test clips per domain
    and label (so each section has ``4 * test_per_domain_label`` test clips)."""

    source_train: int
    target_train: int
    test_per_domain_label: int

    def clips_per_machine(self, n_sections: int = 3) -> int:
        return n_sections * (self.source_train + self.target_train + 4 * self.test_per_domain_label)


SCALES = {
    "small": Scale(source_train=50, target_train=10, test_per_domain_label=10),
    "full": Scale(source_train=990, target_train=10, test_per_domain_label=50),
}
"""``small`` (default, a few hundred clips per machine) and ``full`` (the DCASE 2022 counts)."""


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute key of a section: its values in each domain and the parameter it sets.

    ``source`` and ``target`` map the value written in the file name to the value of
    ``Condition.<parameter>``; ``target=None`` means the key does not shift between domains.
    """

    key: str
    parameter: str
    source: dict
    target: dict | None = None

    def values(self, domain: str) -> dict:
        return self.source if domain == "source" or self.target is None else self.target


def _a(key, parameter, source, target=None):
    return AttributeSpec(key, parameter, source, target)


# machine -> (base condition, [section 00, 01, 02] as lists of attribute specs)
SECTIONS: dict[str, tuple[Condition, list[list[AttributeSpec]]]] = {
    "fan": (Condition(snr_db=6.0), [
        [_a("m-n", "noise", {"W": "factory_a", "X": "factory_b"}, {"Y": "hall"})],
        [_a("f-n", "speed", {"A": 1.0, "B": 1.08}, {"C": 1.35})],
        [_a("n-lv", "snr_db", {"L1": 8.0, "L2": 5.0}, {"L3": -1.0})],
    ]),
    "gearbox": (Condition(snr_db=6.0), [
        [_a("volt", "speed", {"1.0": 1.0, "1.5": 1.12}, {"2.5": 1.45}), _a("wt", "load", {"100": 1.0, "150": 1.2})],
        [_a("volt", "speed", {"1.0": 1.0, "1.3": 1.08}), _a("wt", "load", {"50": 0.7, "100": 1.0}, {"250": 1.8})],
        [_a("volt", "speed", {"1.0": 1.0}), _a("mic", "mic", {"1": "flat"}, {"2": "dark"})],
    ]),
    "bearing": (Condition(snr_db=4.0), [
        [_a("vel", "speed", {"6": 0.8, "10": 1.0}, {"22": 1.5}), _a("loc", "mic", {"A": "flat", "B": "bright"})],
        [_a("vel", "speed", {"8": 0.9, "12": 1.05}), _a("loc", "mic", {"A": "flat"}, {"D": "dark"})],
        [_a("vel", "speed", {"10": 1.0}), _a("f-n", "noise", {"A": "factory_a"}, {"C": "factory_b"})],
    ]),
    "slider": (Condition(snr_db=6.0), [
        [_a("ac", "speed", {"0.03": 1.0, "0.05": 1.15}, {"0.13": 1.6})],
        [_a("f-n", "noise", {"A": "factory_a"}, {"B": "hall"})],
        [_a("room", "room", {"dry": 0.0}, {"hall": 0.5})],
    ]),
    "valve": (Condition(snr_db=10.0), [
        [_a("pat", "pattern", {"00": 0, "01": 1}, {"02": 2})],
        [_a("pat", "pattern", {"00": 0}), _a("panel", "room", {"open": 0.0}, {"b-c": 0.4})],
        [_a("pat", "pattern", {"03": 3}), _a("mic", "mic", {"1": "flat"}, {"2": "bright"})],
    ]),
    "ToyCar": (Condition(snr_db=5.0), [
        [_a("car", "load", {"A1": 1.0}), _a("spd", "speed", {"28V": 1.0, "31V": 1.1}, {"40V": 1.4}),
         _a("mic", "mic", {"1": "flat"}), _a("noise", "noise", {"1": "factory_a"})],
        [_a("car", "load", {"B1": 0.9}), _a("spd", "speed", {"28V": 1.0}),
         _a("mic", "mic", {"1": "flat"}, {"2": "dark"}), _a("noise", "noise", {"1": "factory_a"})],
        [_a("car", "load", {"C1": 1.1}), _a("spd", "speed", {"31V": 1.1}),
         _a("mic", "mic", {"1": "flat"}), _a("noise", "noise", {"1": "factory_a"}, {"3": "factory_b"})],
    ]),
    "ToyTrain": (Condition(snr_db=5.0), [
        [_a("car", "load", {"E1": 1.0}), _a("spd", "speed", {"6": 1.0, "7": 1.12}, {"10": 1.5}),
         _a("mic", "mic", {"1": "flat"}), _a("noise", "noise", {"1": "factory_a"})],
        [_a("car", "load", {"F1": 0.9}), _a("spd", "speed", {"6": 1.0}),
         _a("mic", "mic", {"1": "flat"}, {"2": "bright"}), _a("noise", "noise", {"1": "factory_a"})],
        [_a("car", "load", {"G1": 1.1}), _a("spd", "speed", {"7": 1.12}),
         _a("mic", "mic", {"1": "flat"}), _a("noise", "noise", {"1": "factory_a"}, {"3": "hall"})],
    ]),
}

SEVERITY_RANGE = (0.15, 1.0)
"""Fault severity is drawn uniformly from this range for every anomalous clip."""


@dataclass(frozen=True)
class ClipSpec:
    """Everything that defines one synthetic clip: its DCASE name and how to render it."""

    machine: str
    section: str
    domain: str
    split: str
    label: str
    index: int
    attributes: str
    condition: Condition
    seed: int

    @property
    def relpath(self) -> str:
        """Path below the dataset root, e.g. ``dev_data/fan/train/section_00_source_train_normal_0000_m-n_W.wav``."""
        name = (f"section_{self.section}_{self.domain}_{self.split}_{self.label}_{self.index:04d}"
                f"_{self.attributes}.wav")
        return os.path.join(DEV_DATA, self.machine, self.split, name)


def _clip_seed(seed: int, *parts) -> int:
    return zlib.crc32("/".join(map(str, (seed,) + parts)).encode())


def _draw_condition(machine: str, section: int, domain: str, rng: np.random.Generator) -> tuple[str, Condition]:
    base, section_specs = SECTIONS[machine]
    tokens, updates = [], {}
    for spec in section_specs[section]:
        options = spec.values(domain)
        value = list(options)[rng.integers(len(options))]
        tokens += [spec.key, value]
        updates[spec.parameter] = options[value]
    condition = replace(base, **updates)
    return "_".join(tokens), replace(condition, snr_db=condition.snr_db + rng.uniform(-2.0, 2.0))


def plan(machines: Iterable[str] = MACHINE_TYPES, scale: Scale = SCALES["small"], seed: int = 0) -> list[ClipSpec]:
    """The list of clips a dataset of ``scale`` holds, without rendering any audio."""
    specs = []
    for machine in machines:
        if machine not in SECTIONS:
            raise AsdError(f"unknown machine type '{machine}'; use one of {', '.join(MACHINE_TYPES)}")
        for section in range(3):
            groups = [("source", "train", "normal", scale.source_train),
                      ("target", "train", "normal", scale.target_train)]
            groups += [(d, "test", lab, scale.test_per_domain_label)
                       for d in ("source", "target") for lab in ("normal", "anomaly")]
            for domain, split, label, count in groups:
                for index in range(count):
                    clip_seed = _clip_seed(seed, machine, section, domain, split, label, index)
                    attributes, condition = _draw_condition(machine, section, domain, np.random.default_rng(clip_seed))
                    specs.append(ClipSpec(machine, f"{section:02d}", domain, split, label, index,
                                          attributes, condition, clip_seed))
    return specs


def render_clip(spec: ClipSpec) -> np.ndarray:
    """The float32 waveform (16 kHz, 10 s) of one planned clip."""
    rng = np.random.default_rng([spec.seed, 1])
    fault, severity = None, 0.0
    if spec.label == "anomaly":
        faults = MACHINE_MODELS[spec.machine][1]
        shares = FAULT_SHARES.get(spec.machine)  # equal shares draw as they always did: other types' clips stay
        fault = faults[rng.choice(len(faults), p=shares) if shares else rng.integers(len(faults))]
        severity = rng.uniform(*SEVERITY_RANGE)
    level_db = RECORDING_LEVEL_DB[spec.machine] + rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB)
    return render(spec.machine, spec.condition, CLIP_SAMPLES, rng, fault, severity, level_db)


def generate(out_dir: str, machines: Iterable[str] = MACHINE_TYPES, scale: Scale = SCALES["small"],
             seed: int = 0, force: bool = False,
             progress: Callable[[Iterable, int], Iterable] = lambda it, total: it,
             workers: int | None = None) -> list[str]:
    """Render and write a dataset under ``out_dir`` (``out_dir/dev_data/<machine>/{train,test}``).

    Clips are rendered into a hidden staging folder under ``out_dir`` and each machine folder is
    moved into place only when complete, so an interrupted run leaves no half-written machine and
    loses nothing already there. A machine folder that already holds files is refused unless
    ``force``, which replaces it. ``workers`` processes render in parallel (default: the CPU count;
    1 renders in this process). Returns the relative paths written.
    """
    machines = list(machines)
    specs = plan(machines, scale, seed)
    targets = {m: os.path.join(out_dir, DEV_DATA, m) for m in machines}
    for target in targets.values():
        if os.path.isdir(target) and any(os.scandir(target)) and not force:
            raise AsdError(f"{target}: already holds files; pass --force to replace it or choose another --out")
    staging = os.path.join(out_dir, f".synth-staging-{os.getpid()}")
    try:
        for machine in machines:
            for split in ("train", "test"):
                os.makedirs(os.path.join(staging, DEV_DATA, machine, split), exist_ok=True)
        jobs = [(staging, spec) for spec in specs]
        for _ in progress(map_in_processes(_write_clip, jobs, workers, chunksize=4), len(jobs)):
            pass
        for machine, target in targets.items():
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(staging, DEV_DATA, machine), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [s.relpath for s in specs]


def _write_clip(job: tuple[str, ClipSpec]) -> str:
    out_dir, spec = job
    write_wav_atomic(os.path.join(out_dir, spec.relpath), render_clip(spec), SAMPLE_RATE)
    return spec.relpath


def more_normals(out_dir: str, machine: str, scale: Scale, seed: int, split: str, domain: str,
                 count: int) -> dict[str, list[str]]:
    """Render ``count`` further normal clips of ``split`` and ``domain`` per section, after those of
    the dataset of ``scale`` and ``seed``: the same operating conditions, none of the dataset's clips.

    Written as ``<out_dir>/section_XX/<the clip's DCASE name>.wav`` (16-bit, as the dataset's); the
    new clips of an operating condition that a detector met in few training clips (the
    calibration clips of ``python cli.py calibrate``), or fresh normals that measure how often a
    detector flags one (``benchmarks/normal_rates.py``). Returns section -> paths, sorted.
    """
    count_fields = {("train", "source"): "source_train", ("train", "target"): "target_train"}
    field = count_fields.get((split, domain), "test_per_domain_label")
    kept = getattr(scale, field)
    written: dict[str, list[str]] = {}
    for spec in plan([machine], replace(scale, **{field: kept + count}), seed):
        if (spec.split, spec.domain, spec.label) == (split, domain, "normal") and spec.index >= kept:
            path = os.path.join(out_dir, f"section_{spec.section}", os.path.basename(spec.relpath))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_wav_atomic(path, render_clip(spec), SAMPLE_RATE)
            written.setdefault(spec.section, []).append(path)
    return dict(sorted(written.items()))
