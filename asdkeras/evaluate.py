"""Run a saved detector over a test split: scores, decisions, official CSVs and metrics."""

from __future__ import annotations

import numpy as np

from asdkeras.data.layout import ClipRecord, parse_filename, scan_split, sections, select
from asdkeras.detector import SPLIT_FILE, Detector
from asdkeras.names import DEV_DATA, saved_variants, variant_result_name
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.metrics import (Evaluation, SectionResult, metrics_document,
                              metrics_path, section_metrics, write_metrics_json, write_result_csvs,
                              write_score_record)
from asdkeras.progress import Progress, no_progress


def _labelled(records: list[ClipRecord]) -> bool:
    return all(r.label is not None and r.domain is not None for r in records)


def evaluate(folder: str, machine: str, model_name: str, data_dir: str, result_dir: str, cache_dir: str,
             subset: str = DEV_DATA, progress: Progress = no_progress,
             records: list[ClipRecord] | None = None, skipped: SkippedFiles | None = None,
             long_clips: str = "crop") -> Evaluation:
    """Score every test clip of ``machine``, write the official CSVs per section and, for labelled
    data, ``metrics_<model>_<machine>.json``.

    Given ``skipped``, unreadable clips are recorded there and left out (the evaluation's
    ``notes`` name the sections whose CSVs lack them); without it the first one raises. The
    ``notes`` also name the conditions whose normals are flagged beyond chance
    (:func:`surplus_alarm_notes`).
    ``long_clips``: "crop", "max" or "mean" (see :meth:`Detector.score_files`).
    """
    records = records if records is not None else scan_split(data_dir, machine, "test", subset)
    skipped = SkippedFiles.or_strict(skipped)
    _check_split(folder, records)
    detector = Detector.load(folder)
    scores = detector.score_files([r.path for r in records], cache_dir, progress, skipped, long_clips)
    kept = [i for i, r in enumerate(records) if r.path not in skipped]
    scored, decisions = [records[i] for i in kept], detector.decide(scores[kept])
    evaluation = write_evaluation(machine, model_name, scored, scores[kept], decisions, detector.threshold, result_dir)
    evaluation.ensemble = detector.info.get("ensemble")
    evaluation.notes = missing_rows_notes(machine, records, set(range(len(records))) - set(kept))
    if detector.intended_flag_share is not None:
        evaluation.notes += surplus_alarm_notes(machine, model_name, scored, decisions, detector.intended_flag_share)
    return evaluation


def evaluate_with_variants(folder: str, machine: str, model_name: str, *args, **kwargs) -> list[Evaluation]:
    """:func:`evaluate` the detector in ``folder`` and each of its saved variants.

    A variant's results are named ``<model_name>-<variant>`` (``mobilenet-int8``: what the
    integer TFLite files decide). Variants are scored first, so the official per-section CSVs
    left in the result folder are the detector's own. Returns the detector's evaluation, then
    its variants'.
    """
    variants = [evaluate(sub, machine, variant_result_name(model_name, name), *args, **kwargs)
                for name, sub in saved_variants(folder).items()]
    return [evaluate(folder, machine, model_name, *args, **kwargs)] + variants


def _check_split(folder: str, records: list[ClipRecord]) -> None:
    """With a derived split (``split.json``), no test clip may be one the detector trained on."""
    import json
    import os

    path = os.path.join(folder, SPLIT_FILE)
    if not os.path.isfile(path):
        return
    with open(path) as handle:
        split = json.load(handle)
    trained = {os.path.join(split["machine_folder"], name) for name in split["train"]}
    overlap = [r.path for r in records if os.path.abspath(r.path) in trained]
    if overlap:
        raise AsdError(f"{overlap[0]}: the detector in {folder} trained on this clip ({len(overlap)} test clips "
                       f"were training clips: the data changed since fit); fit again")


def missing_rows_notes(machine: str, records: list[ClipRecord], missing: set[int]) -> list[str]:
    """One line per section whose official CSVs lack the rows of skipped clips."""
    counts: dict[str, int] = {}
    for i in missing:
        counts[records[i].section] = counts.get(records[i].section, 0) + 1
    return [f"anomaly_score_{machine}_section_{section}_test.csv lacks {count} skipped clip(s); the official "
            f"evaluator expects a row for every test clip" for section, count in sorted(counts.items())]


SURPLUS_ALARM_P = 0.01
"""One-sided binomial p-value below which a condition's flagged normals are more than chance allows."""


def surplus_alarm_notes(machine: str, model_name: str, records: list[ClipRecord], decisions,
                        intended_share: float) -> list[str]:
    """One line per section and domain whose normal test clips are flagged more often than
    ``intended_share`` allows by chance (one-sided binomial test, p < :data:`SURPLUS_ALARM_P`),
    with what to do about it.

    A threshold set for a new operating condition from its ten training clips can sit too low
    when those clips happen to lie closer together than the condition's normals (BENCHMARKS.md,
    "Seed 151's conditions on fresh normals"); at an intended 10 %, 5 flagged of 10 normals has
    p = 0.002 and is noted, 3 of 10 (p = 0.07) is not. Records without a label or domain are left out.
    """
    import scipy.stats

    decisions = np.asarray(decisions, bool)
    notes = []
    for section in sections(records):
        for domain in ("source", "target"):
            flags = [bool(d) for r, d in zip(records, decisions)
                     if r.section == section and r.domain == domain and r.label == "normal"]
            flagged, count = sum(flags), len(flags)
            if not count:
                continue
            p = float(scipy.stats.binom.sf(flagged - 1, count, intended_share))
            if p < SURPLUS_ALARM_P:
                notes.append(f"{machine} / {model_name}: section {section} {domain}: {flagged} of {count} normal clips "
                             f"flagged where {intended_share:.0%} is intended (binomial p = {p:.2g}); the training "
                             f"clips of that operating condition may not show how its normals vary: calibrate with "
                             f"more of its normal clips, recorded apart from the test set ('python cli.py calibrate "
                             f"--machine {machine} --section {section}{' --domain source' if domain == 'source' else ''} "
                             f"CLIPS'), or fit with a higher "
                             f"--threshold-confidence (README, 'When a new condition flags too many normals in use')")
    return notes


def write_evaluation(machine: str, model_name: str, records: list[ClipRecord], scores, decisions,
                     threshold: float, result_dir: str) -> Evaluation:
    """Official CSVs per section and, for labelled records, metrics: the same for a Keras or a TFLite detector."""
    scores, decisions = np.asarray(scores), np.asarray(decisions)
    files, results = [], []
    by_path = {r.path: i for i, r in enumerate(records)}
    for section in sections(records):
        members = select(records, section=section)
        idx = np.array([by_path[r.path] for r in members])
        files += write_result_csvs(result_dir, machine, section, [r.filename for r in members],
                                   scores[idx], decisions[idx])
        if _labelled(members):
            results.append(section_metrics(section, [r.is_anomaly for r in members], scores[idx],
                                           [r.domain for r in members], decisions[idx]))
    if results:
        files.append(write_metrics_json(result_dir, metrics_document(machine, model_name, results, threshold)))
    files.append(write_score_record(result_dir, model_name, machine, [
        (r.path, r.section, r.domain, r.label, float(score), int(decision))
        for r, score, decision in zip(records, scores, decisions)]))
    return Evaluation(machine, model_name, results, files, threshold)


def evaluate_scored(sidecar: dict, scored: list, unreadable: list[str], result_dir: str) -> Evaluation:
    """The results of a TFLite model's run (``sidecar``: its sidecar; ``scored``: its
    :class:`asdkeras.lite.ScoredClip` list), written as ``test`` writes them, named
    ``<kind>-tflite-<quantisation>``; ``notes`` name the sections missing the ``unreadable`` clips
    and, as :func:`evaluate`'s, the conditions whose normals are flagged beyond chance (sidecars
    written before ``intended_flag_share`` was recorded get no such note)."""
    machine = sidecar["machine"]
    model_name = f"{sidecar['kind']}-tflite-{sidecar['quantisation']}"
    records = [parse_filename(c.path, machine, "test") for c in scored]
    decisions = [c.decision for c in scored]
    evaluation = write_evaluation(machine, model_name, records, [c.score for c in scored], decisions,
                                  float(sidecar["threshold"]), result_dir)
    missing = [parse_filename(p, machine, "test") for p in unreadable]
    evaluation.notes = missing_rows_notes(machine, missing, set(range(len(missing))))
    if sidecar.get("intended_flag_share") is not None:
        evaluation.notes += surplus_alarm_notes(machine, model_name, records, decisions, sidecar["intended_flag_share"])
    return evaluation


def read_evaluation(result_dir: str, model_name: str, machine: str) -> Evaluation:
    """The evaluation saved as ``metrics_<model>_<machine>.json`` (by ``test``, or ``score --result-dir``)."""
    import json

    with open(metrics_path(result_dir, model_name, machine)) as handle:
        document = json.load(handle)
    fields = SectionResult.__dataclass_fields__
    results = [SectionResult(section, **{k: figures.get(k) for k in fields if k != "section"})
               for section, figures in document["sections"].items()]
    return Evaluation(machine, model_name, results, [], document.get("threshold"))
