"""The official DCASE 2022 Task 2 metric, result files and tables.

Per machine and section:

* AUC(source): source-domain normals against **all** anomalies of the section (both domains);
* AUC(target): target-domain normals against all anomalies of the section;
* pAUC: ``roc_auc_score(y, s, max_fpr=0.1)`` over every clip of the section.

The official score is the harmonic mean of the flat list of every AUC(source), AUC(target)
and pAUC, each floored at machine epsilon. Precision, recall and F1 of the decisions are
computed per domain over that domain's clips, and so is the false-alarm share (normal clips
decided anomalous).

Real datasets do not always allow that: DCASE 2020 and MIMII have one domain, a user's folder
may hold one class. A figure that cannot be computed is None with a note saying why; the
official score then does not apply, and :func:`score_summary` gives the harmonic mean of the
figures that exist, marked as the fallback.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field

import numpy as np
import scipy.stats
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from asdkeras.atomic import write_json, write_text
from asdkeras.names import metrics_path, official_decision_csv, official_score_csv, score_record_path  # noqa: F401 (re-exported)

MAX_FPR = 0.1


@dataclass(frozen=True)
class SectionResult:
    """Metrics of one section; precision/recall/F1 are None without decisions."""

    section: str
    auc_source: float | None
    auc_target: float | None
    pauc: float | None
    precision_source: float | None = None
    recall_source: float | None = None
    f1_source: float | None = None
    precision_target: float | None = None
    recall_target: float | None = None
    f1_target: float | None = None
    false_alarm_source: float | None = None
    false_alarm_target: float | None = None
    note: str | None = None
    """Why a figure is missing (one class only, a domain without normals); None when all exist."""


def _both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and y.min() != y.max()


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
    aucs, notes = {}, []
    if not _both_classes(y):
        notes.append(f"only {'anomalous' if y.size and y.min() == 1 else 'normal'} clips ({y.size}): no AUC")
    for domain in ("source", "target"):
        keep = (d == domain) | (y == 1)
        aucs[domain] = float(roc_auc_score(y[keep], s[keep])) if _both_classes(y[keep]) else None
        if aucs[domain] is None and _both_classes(y):
            notes.append(f"no {domain} normals: no AUC({domain})")
    pauc = float(roc_auc_score(y, s, max_fpr=max_fpr)) if _both_classes(y) else None
    extra = {}
    if decisions is not None:
        dec = np.asarray(decisions, int)
        for domain in ("source", "target"):
            keep = d == domain
            if not keep.any():
                continue
            p, r, f, _ = precision_recall_fscore_support(y[keep], dec[keep], average="binary", zero_division=0)
            normals = keep & (y == 0)
            false_alarm = float(dec[normals].mean()) if normals.any() else None
            extra.update({f"precision_{domain}": float(p), f"recall_{domain}": float(r), f"f1_{domain}": float(f),
                          f"false_alarm_{domain}": false_alarm})
    return SectionResult(section, aucs["source"], aucs["target"], pauc, **extra,
                         note=f"section {section}: " + "; ".join(notes) if notes else None)


def hmean(values) -> float:
    """Harmonic mean as DCASE takes it (zeros lifted to machine epsilon, so one zero does not void the mean)."""
    return float(scipy.stats.hmean(np.maximum(np.asarray(values, np.float64), sys.float_info.epsilon)))


def official_score(results: list[SectionResult]) -> float | None:
    """Harmonic mean of every AUC(source), AUC(target) and pAUC, each floored at machine epsilon;
    None when any of them is missing (the official rule does not apply)."""
    values = [v for r in results for v in (r.auc_source, r.auc_target, r.pauc)]
    return hmean(values) if values and None not in values else None


def score_summary(results: list[SectionResult]) -> dict:
    """The official score where the rule applies, else the fallback and why.

    Returns ``{"value", "rule": "official" | "fallback" | None, "reason"}``: the fallback is the
    harmonic mean of the AUCs and pAUCs that exist (one domain only: that domain's AUC and the
    pAUC); with none at all, ``value`` is None.
    """
    official = official_score(results)
    if official is not None:
        return {"value": official, "rule": "official", "reason": None}
    available = [v for r in results for v in (r.auc_source, r.auc_target, r.pauc) if v is not None]
    reasons = "; ".join(r.note for r in results if r.note)
    return {"value": hmean(available) if available else None, "rule": "fallback" if available else None,
            "reason": f"official score not applicable ({reasons})"
                      + ("; shown: h-mean of the AUCs and pAUCs that exist" if available else "")}


def write_result_csvs(result_dir: str, machine: str, section: str, filenames, scores, decisions) -> tuple[str, str]:
    """Write ``anomaly_score_*`` and ``decision_result_*`` CSVs (no header, rows sorted by file name)."""
    order = np.argsort(np.asarray(filenames))
    rows = [(filenames[i], float(scores[i]), int(decisions[i])) for i in order]
    score_path = official_score_csv(result_dir, machine, section)
    decision_path = official_decision_csv(result_dir, machine, section)
    write_text(score_path, "".join(f"{name},{score}\n" for name, score, _ in rows))
    write_text(decision_path, "".join(f"{name},{decision}\n" for name, _, decision in rows))
    return score_path, decision_path


SCORE_RECORD_FIELDS = ("path", "section", "domain", "label", "score", "decision")


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
        "score": score_summary(results),
    }


def write_metrics_json(result_dir: str, document: dict) -> str:
    return write_json(metrics_path(result_dir, document["model"], document["machine"]), document)


def format_table(machine: str, model: str, results: list[SectionResult]) -> str:
    """A per-section table with arithmetic and harmonic means and the official score."""
    has_decisions = any(r.f1_source is not None or r.f1_target is not None for r in results)
    header = f"{machine} / {model}\n{'section':8s} {'AUC src':>8s} {'AUC tgt':>8s} {'pAUC':>8s}"
    if has_decisions:
        header += "".join(f" {name:>6s}" for name in ("P src", "R src", "F1 src", "FA src",
                                                       "P tgt", "R tgt", "F1 tgt", "FA tgt"))
    lines = [header]
    number = lambda v, width=8, digits=4: f"{v:{width}.{digits}f}" if v is not None else f"{'-':>{width}s}"  # noqa: E731
    for r in results:
        line = f"{r.section:8s} " + " ".join(number(v) for v in (r.auc_source, r.auc_target, r.pauc))
        if has_decisions:
            values = (r.precision_source, r.recall_source, r.f1_source, r.false_alarm_source,
                      r.precision_target, r.recall_target, r.f1_target, r.false_alarm_target)
            line += "".join(f" {number(v, 6, 3)}" for v in values)
        lines.append(line)
    columns = [[getattr(r, k) for r in results if getattr(r, k) is not None] for k in ("auc_source", "auc_target", "pauc")]
    lines.append(f"{'a-mean':8s} " + " ".join(number(float(np.mean(c)) if c else None) for c in columns))
    lines.append(f"{'h-mean':8s} " + " ".join(number(hmean(c) if c else None) for c in columns))
    summary = score_summary(results)
    if summary["rule"] == "official":
        lines.append(f"official score (h-mean of all AUCs and pAUCs): {summary['value']:.4f}")
    else:
        lines.append(summary["reason"] + (f": {summary['value']:.4f}" if summary["value"] is not None else ""))
    if has_decisions:
        lines.append("P/R/F1: precision, recall, F1 of the decisions; FA: share of normal clips flagged (false alarms)")
    return "\n".join(lines)


# What a test run produced, and the demo's table of them (here, free of TensorFlow: the demo's
# per-type process reads them from its steps' processes without importing it).

@dataclass
class Evaluation:
    """What a test run produced: per-section metrics (empty without labels) and the files written."""

    machine: str
    model: str
    results: list[SectionResult]
    files: list[str]
    threshold: float
    ensemble: dict | None = None
    """The ensemble's ``ensemble.json`` document, for an ensemble."""
    notes: list[str] = field(default_factory=list)
    """Lines for the user: sections whose CSVs lack skipped clips."""

    @property
    def official_score(self) -> float | None:
        return official_score(self.results) if self.results else None

    def table(self) -> str:
        return format_table(self.machine, self.model, self.results) if self.results else \
            f"{self.machine} / {self.model}: no labels, scores and decisions written only"


def format_decision_summary(evaluations: list[Evaluation]) -> str:
    """One line per machine and model: official score, AUCs and pAUC (harmonic means over sections),
    and recall and false-alarm share per domain (means over sections).

    An app shows the decision, not the score: recall and false alarms are what its user would see.
    """
    lines = [f"{'machine':10s} {'model':24s} {'official':>8s} {'AUC src':>7s} {'AUC tgt':>7s} {'pAUC':>6s} "
             f"{'recall src':>10s} {'recall tgt':>10s} {'false alarm src':>15s} {'false alarm tgt':>15s}"]
    for evaluation in evaluations:
        if not evaluation.results:
            lines.append(f"{evaluation.machine:10s} {evaluation.model:24s} (no labels)")
            continue
        def figure(name: str, average, width: int) -> str:
            values = [getattr(r, name) for r in evaluation.results if getattr(r, name) is not None]
            return f"{average(values):{width}.3f}" if values else f"{'-':>{width}s}"

        summary = score_summary(evaluation.results)
        score = (f"{summary['value']:8.3f}" + ("*" if summary["rule"] == "fallback" else "")
                 if summary["value"] is not None else f"{'-':>8s}")
        lines.append(f"{evaluation.machine:10s} {evaluation.model:24s} {score} "
                     f"{figure('auc_source', hmean, 7)} {figure('auc_target', hmean, 7)} {figure('pauc', hmean, 6)} "
                     f"{figure('recall_source', np.mean, 10)} {figure('recall_target', np.mean, 10)} "
                     f"{figure('false_alarm_source', np.mean, 15)} {figure('false_alarm_target', np.mean, 15)}")
    if any(score_summary(e.results)["rule"] == "fallback" for e in evaluations if e.results):
        lines.append("*: not the official score (a domain or a class is missing): h-mean of the AUCs and pAUCs that exist")
    return "\n".join(lines)
