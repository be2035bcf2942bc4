"""Outlier-exposure sweep: the clear AE against OE with every other machine type (report, Table 1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from asdkeras.atomic import write_json
from asdkeras.data.layout import list_machines
from asdkeras.errors import AsdError
from asdkeras.evaluate import evaluate
from asdkeras.detectors.autoencoder import AutoencoderConfig, fit_autoencoder
from asdkeras.metrics import SectionResult, official_score
from asdkeras.names import OE_SWEEP_DIR, oe_sweep_path
from asdkeras.progress import Progress, no_progress


@dataclass
class SweepRow:
    """One line of the table: section AUCs (mean of source and target), overall AUC, pAUC, official score."""

    name: str
    outlier: str | None
    section_auc: dict
    auc: float
    pauc: float
    official: float

    @classmethod
    def from_results(cls, name: str, outlier: str | None, results: list[SectionResult]) -> "SweepRow":
        section_auc = {r.section: (r.auc_source + r.auc_target) / 2 for r in results}
        return cls(name, outlier, section_auc, float(np.mean(list(section_auc.values()))),
                   float(np.mean([r.pauc for r in results])), official_score(results))


def run_oe_sweep(machine: str, data_dir: str, models_dir: str, result_dir: str, cache_dir: str,
                 epochs: int = 30, seed: int = 0, progress: Progress = no_progress,
                 announce: Callable[[str], None] = lambda name: None) -> list[SweepRow]:
    """Train and test the clear AE and one OE model per other machine type found in ``data_dir``.

    Models go to ``<models-dir>/<machine>/oe-sweep/<variant>/``, results to
    ``<result-dir>/oe-sweep/<machine>/<variant>/`` and the table to ``<result-dir>/oe_sweep_<machine>.json``.
    """
    others = [m for m in list_machines(data_dir) if m != machine]
    if not others:
        raise AsdError(f"{data_dir}: no other machine type to use as outliers; generate more with 'python cli.py synth'")
    variants = [("clear AE", None, "mse")] + [(f"OE ({m})", m, "oe") for m in others]
    rows = []
    for name, outlier, loss in variants:
        announce(name)
        slug = outlier or "clear"
        folder = os.path.join(models_dir, machine, OE_SWEEP_DIR, slug)
        config = AutoencoderConfig(machine=machine, outlier=outlier or "none", loss=loss, epochs=epochs, seed=seed,
                                   data_dir=data_dir, models_dir=models_dir, cache_dir=cache_dir, output_dir=folder)
        fit_autoencoder(config, progress)
        evaluation = evaluate(folder, machine, f"ae-{slug}", data_dir,
                              os.path.join(result_dir, OE_SWEEP_DIR, machine, slug), cache_dir, progress=progress)
        rows.append(SweepRow.from_results(name, outlier, evaluation.results))
    write_json(oe_sweep_path(result_dir, machine), [row.__dict__ for row in rows])
    return rows


def format_sweep_table(machine: str, rows: list[SweepRow]) -> str:
    """The report's Table 1 layout, in percent."""
    sections = sorted(rows[0].section_auc)
    header = f"{machine:14s} " + " ".join(f"{'AUC ' + str(int(s)):>7s}" for s in sections) + \
        f" {'AUC':>7s} {'pAUC':>7s} {'official':>8s}"
    lines = [header]
    for row in rows:
        lines.append(f"{row.name:14s} " + " ".join(f"{100 * row.section_auc[s]:7.2f}" for s in sections) +
                     f" {100 * row.auc:7.2f} {100 * row.pauc:7.2f} {100 * row.official:8.2f}")
    return "\n".join(lines)
