"""The official DCASE 2022 Task 2 metric, result files and tables.

Per machine and section:

* AUC(source): source-domain normals against **all** anomalies of the section (both domains);
* AUC(target): target-domain normals against all anomalies of the section;
* pAUC: ``roc_auc_score(y, s, max_fpr=0.1)`` over every clip of the section.

The official score is the harmonic mean of the flat list of every AUC(source), AUC(target)
and pAUC, each floored at machine epsilon. Precision, recall and F1 of the decisions are
computed per domain over that domain's clips, and so is the false-alarm share (normal clips
decided anomalous).
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass

import numpy as np
import scipy.stats
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from asdkeras.atomic import write_json, write_text
from asdkeras.errors import AsdError

MAX_FPR = 0.1


@dataclass(frozen=True)
class SectionResult:
    """Metrics of one section; precision/recall/F1 are None without decisions."""

    section: str
    auc_source: float
    auc_target: float
    pauc: float
    precision_source: float | None = None
    recall_source: float | None = None
    f1_source: float | None = None
    precision_target: float | None = None
    recall_target: float | None = None
    f1_target: float | None = None
    false_alarm_source: float | None = None
    false_alarm_target: float | None = None


def _check_both_classes(y: np.ndarray, what: str) -> None:
    if y.size == 0 or y.min() == y.max():
        raise AsdError(f"{what} needs both normal and anomalous clips; got {int(y.sum())} anomalies of {y.size}")


def section_metrics(section: str, labels, scores, domains, decisions=None, max_fpr: float = MAX_FPR) -> SectionResult:
    """Official metrics of one section.

    Parameters
    ----------
    labels : array of 0/1 (1 = anomaly)
    scores : array of float, higher = more anomalous
    domains : array of "source" / "target"
    decisions : array of 0/1, optional
    """
    y, s, d = np.asarray(labels, int), np.asarray(scores, float), np.asarray(domains)
    aucs = {}
    for domain in ("source", "target"):
        keep = (d == domain) | (y == 1)
        _check_both_classes(y[keep], f"section {section} AUC({domain})")
        aucs[domain] = float(roc_auc_score(y[keep], s[keep]))
    _check_both_classes(y, f"section {section} pAUC")
    pauc = float(roc_auc_score(y, s, max_fpr=max_fpr))
    extra = {}
    if decisions is not None:
        dec = np.asarray(decisions, int)
        for domain in ("source", "target"):
            keep = d == domain
            p, r, f, _ = precision_recall_fscore_support(y[keep], dec[keep], average="binary", zero_division=0)
            normals = keep & (y == 0)
            false_alarm = float(dec[normals].mean()) if normals.any() else None
            extra.update({f"precision_{domain}": float(p), f"recall_{domain}": float(r), f"f1_{domain}": float(f),
                          f"false_alarm_{domain}": false_alarm})
    return SectionResult(section, aucs["source"], aucs["target"], pauc, **extra)


def hmean(values) -> float:
    """Harmonic mean as DCASE takes it (zeros lifted to machine epsilon, so one zero does not void the mean)."""
    return float(scipy.stats.hmean(np.maximum(np.asarray(values, np.float64), sys.float_info.epsilon)))


def official_score(results: list[SectionResult]) -> float:
    """Harmonic mean of every AUC(source), AUC(target) and pAUC, each floored at machine epsilon."""
    values = [v for r in results for v in (r.auc_source, r.auc_target, r.pauc)]
    return hmean(values)


def write_result_csvs(result_dir: str, machine: str, section: str, filenames, scores, decisions) -> tuple[str, str]:
    """Write ``anomaly_score_*`` and ``decision_result_*`` CSVs (no header, rows sorted by file name)."""
    order = np.argsort(np.asarray(filenames))
    rows = [(filenames[i], float(scores[i]), int(decisions[i])) for i in order]
    score_path = os.path.join(result_dir, f"anomaly_score_{machine}_section_{section}_test.csv")
    decision_path = os.path.join(result_dir, f"decision_result_{machine}_section_{section}_test.csv")
    write_text(score_path, "".join(f"{name},{score}\n" for name, score, _ in rows))
    write_text(decision_path, "".join(f"{name},{decision}\n" for name, _, decision in rows))
    return score_path, decision_path


SCORE_RECORD_FIELDS = ("path", "section", "domain", "label", "score", "decision")


def score_record_path(result_dir: str, model: str, machine: str) -> str:
    """``<result_dir>/scores_<model>_<machine>.csv``: one detector's clip scores, kept beside the official CSVs
    (which every detector of a machine overwrites)."""
    return os.path.join(result_dir, f"scores_{model}_{machine}.csv")


def write_score_record(result_dir: str, model: str, machine: str, rows: list[tuple]) -> str:
    """Write :data:`SCORE_RECORD_FIELDS` rows (with a header) atomically; domain and label may be empty."""
    lines = [",".join(SCORE_RECORD_FIELDS)]
    lines += [",".join("" if value is None else str(value) for value in row) for row in rows]
    return write_text(score_record_path(result_dir, model, machine), "\n".join(lines) + "\n")


def read_score_record(path: str) -> list[dict]:
    """Rows of :func:`write_score_record` as dicts (score float, decision int, empty fields None)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{**row, "score": float(row["score"]), "decision": int(row["decision"]),
             "domain": row["domain"] or None, "label": row["label"] or None} for row in rows]


def read_score_csv(path: str) -> dict[str, float]:
    """Read an ``anomaly_score_*.csv`` back into file name -> score."""
    with open(path, newline="") as handle:
        return {row[0]: float(row[1]) for row in csv.reader(handle) if row}


def metrics_document(machine: str, model: str, results: list[SectionResult], threshold: float | None = None) -> dict:
    """The JSON saved as ``metrics_<model>_<machine>.json``."""
    return {
        "machine": machine,
        "model": model,
        "threshold": threshold,
        "sections": {r.section: {k: v for k, v in r.__dict__.items() if k != "section" and v is not None}
                     for r in results},
        "official_score": official_score(results),
    }


def write_metrics_json(result_dir: str, document: dict) -> str:
    return write_json(os.path.join(result_dir, f"metrics_{document['model']}_{document['machine']}.json"), document)


def format_table(machine: str, model: str, results: list[SectionResult]) -> str:
    """A per-section table with arithmetic and harmonic means and the official score."""
    has_decisions = results[0].f1_source is not None
    header = f"{machine} / {model}\n{'section':8s} {'AUC src':>8s} {'AUC tgt':>8s} {'pAUC':>8s}"
    if has_decisions:
        header += "".join(f" {name:>6s}" for name in ("P src", "R src", "F1 src", "FA src",
                                                       "P tgt", "R tgt", "F1 tgt", "FA tgt"))
    lines = [header]
    for r in results:
        line = f"{r.section:8s} {r.auc_source:8.4f} {r.auc_target:8.4f} {r.pauc:8.4f}"
        if has_decisions:
            values = (r.precision_source, r.recall_source, r.f1_source, r.false_alarm_source,
                      r.precision_target, r.recall_target, r.f1_target, r.false_alarm_target)
            line += "".join(f" {v:6.3f}" if v is not None else f" {'-':>6s}" for v in values)
        lines.append(line)
    columns = np.array([[r.auc_source, r.auc_target, r.pauc] for r in results])
    lines.append(f"{'a-mean':8s} " + " ".join(f"{v:8.4f}" for v in columns.mean(axis=0)))
    lines.append(f"{'h-mean':8s} " + " ".join(f"{v:8.4f}" for v in scipy.stats.hmean(np.maximum(columns, sys.float_info.epsilon), axis=0)))
    lines.append(f"official score (h-mean of all AUCs and pAUCs): {official_score(results):.4f}")
    if has_decisions:
        lines.append("P/R/F1: precision, recall, F1 of the decisions; FA: share of normal clips flagged (false alarms)")
    return "\n".join(lines)
