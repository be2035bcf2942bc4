"""An evaluation report to look at: one self-contained HTML page, built with matplotlib, without TensorFlow.

It reads what the other commands saved: ``metrics_<kind>_<machine>.json`` and
``scores_<kind>_<machine>.csv`` (written by ``test``), and ``detector.json`` and ``history.json`` of
each detector folder (written by ``fit``). Per machine type:

* the table of AUC (source), AUC (target) and pAUC per section for every detector, laid out like
  the report's Tables 2 and 3 with the ensemble beside them, and a table of official score,
  precision, recall, F1 and false alarms per domain with each detector's threshold;
* per section, ROC curves of the source and the target domain (each domain's normals against
  all anomalies of the section, the official rule), histograms of normal and anomalous scores
  with the decision threshold drawn, and the spectrogram of a normal and an anomalous clip (as
  the report's Figures 1 and 2: STFT magnitude, 4096-sample window, 50 % overlap, in dB);
* the training curves.

Images are embedded in the page (base64 PNG), so it opens anywhere with no network; the PNGs are
also written beside it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from asdkeras.atomic import write_bytes, write_text
from asdkeras import detectors
from asdkeras.errors import AsdError
from asdkeras.metrics import hmean, read_score_record
from asdkeras.names import (DETECTOR_FILE, HISTORY_FILE, SUBSETS, VARIANTS, detector_dir, machines_with_metrics,
                            metrics_path, report_path, score_record_path, variant_dir, variant_result_name)

SPECTROGRAM_WINDOW = 4096
"""Samples (256 ms at 16 kHz), with 50 % overlap: the MobileNetV2 images' STFT."""


@dataclass
class DetectorRun:
    """What one detector of a machine left behind: test metrics and scores, and its fit's files."""

    kind: str
    metrics: dict
    scores: list[dict]
    detector: dict | None
    history: dict | None

    @property
    def title(self) -> str:
        return detectors.result_title(self.kind)[0]

    @property
    def colour(self) -> str | None:
        return detectors.result_title(self.kind)[1]

    @property
    def threshold(self) -> float | None:
        return self.metrics.get("threshold")


def load_runs(machine: str, kinds, result_dir: str, models_dir: str) -> list[DetectorRun]:
    """The detectors of ``machine`` that ``test`` has evaluated (at least one, else a one-line error)."""
    runs = []
    # a variant (results "<kind>-<variant>", detector in "<kind>/<variant>") follows its detector
    named = []
    for kind in kinds:
        folder = detector_dir(models_dir, machine, kind)
        named += [(kind, folder)] + [(variant_result_name(kind, v), variant_dir(folder, v)) for v in VARIANTS]
    for kind, folder in named:
        metrics_file = metrics_path(result_dir, kind, machine)
        scores_path = score_record_path(result_dir, kind, machine)
        if not (os.path.isfile(metrics_file) and os.path.isfile(scores_path)):
            continue
        with open(metrics_file) as handle:
            metrics = json.load(handle)
        runs.append(DetectorRun(kind, metrics, read_score_record(scores_path),
                                _json_or_none(os.path.join(folder, DETECTOR_FILE)),
                                _json_or_none(os.path.join(folder, HISTORY_FILE))))
    if not runs:
        raise AsdError(f"{result_dir}: no test results for {machine} ({', '.join(kinds)}); run "
                       f"'python cli.py test --machine {machine} --model <kind>' first")
    return runs


def tested_machines(result_dir: str) -> list[str]:
    """Machine types with a ``metrics_*`` file in ``result_dir``: the seven DCASE 2022 types first, then others."""
    from asdkeras.data.layout import MACHINE_TYPES

    names = os.listdir(result_dir) if os.path.isdir(result_dir) else []
    found = machines_with_metrics(names)
    if not found:
        raise AsdError(f"{result_dir}: no test results; run 'python cli.py test' first")
    return [m for m in MACHINE_TYPES if m in found] + [m for m in found if m not in MACHINE_TYPES]


def _json_or_none(path: str) -> dict | None:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _section_rows(run: DetectorRun, section: str) -> list[dict]:
    return [row for row in run.scores if row["section"] == section and row["label"] is not None]


def roc_figure(runs: list[DetectorRun], section: str):
    """ROC curves of the source and target domain of one section, one line per detector."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    figure, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for axis, domain in zip(axes, ("source", "target")):
        drawn = 0
        for run in runs:
            rows = [r for r in _section_rows(run, section) if r["label"] == "anomaly" or r["domain"] == domain]
            labels = np.array([r["label"] == "anomaly" for r in rows], dtype=int)
            if len(set(labels)) < 2:
                continue
            scores = np.array([r["score"] for r in rows])
            fpr, tpr, _ = roc_curve(labels, scores)
            axis.plot(fpr, tpr, color=run.colour, label=f"{run.title} (AUC {roc_auc_score(labels, scores):.3f})")
            drawn += 1
        axis.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
        axis.axvspan(0, 0.1, color="#f2f2f2", zorder=0)
        axis.set(title=f"{domain} normals vs all anomalies", xlabel="false positive rate", xlim=(0, 1), ylim=(0, 1.01))
        if drawn:
            axis.legend(loc="lower right", fontsize=8)
        else:
            axis.text(0.5, 0.5, f"no {domain}-domain normals\n(or no anomalies) in this section", ha="center",
                      va="center", color="#666666", transform=axis.transAxes)
    axes[0].set_ylabel("true positive rate")
    figure.suptitle(f"section {section}: ROC (shaded: FPR <= 0.1, the pAUC range)")
    figure.tight_layout()
    return figure


def histogram_figure(runs: list[DetectorRun], section: str):
    """Normal and anomalous score histograms of one section per detector, the threshold drawn."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False)
    for axis, run in zip(axes[0], runs):
        rows = _section_rows(run, section)
        scores = np.array([r["score"] for r in rows])
        if scores.size == 0:
            axis.set_axis_off()
            continue
        # A few far anomalies would squeeze every other clip into one bin: the range ends where 90 % of
        # the clips (and the threshold) lie, and the clips beyond are counted in the last bin.
        threshold = run.threshold if run.threshold is not None else float(np.median(scores))
        upper = max(float(np.quantile(scores, 0.9)), threshold)
        lower = min(float(scores.min()), threshold)
        upper += 0.05 * (upper - lower) or 1.0
        edges = np.linspace(lower, upper, 26)
        for label, colour in (("normal", "#4c72b0"), ("anomaly", "#dd8452")):
            values = np.clip([r["score"] for r in rows if r["label"] == label], lower, edges[-2] + 1e-9 * (upper - lower))
            axis.hist(values, bins=edges, alpha=0.6, color=colour, label=label)
        if run.threshold is not None:
            axis.axvline(run.threshold, color="black", linestyle="--", linewidth=1.2, label="threshold")
        beyond = int(np.sum(scores > edges[-2]))
        axis.set(title=run.title, ylabel="clips",
                 xlabel="score" + (f" (last bin: {beyond} clips >= {edges[-2]:.3g})" if beyond else ""))
        axis.legend(fontsize=8)
    figure.suptitle(f"section {section}: score distributions")
    figure.tight_layout()
    return figure


def spectrogram_figure(normal_path: str, anomaly_path: str, section: str):
    """STFT magnitude in dB of a normal and an anomalous clip (the report's Figures 1 and 2)."""
    import matplotlib.pyplot as plt
    from scipy.signal import stft

    from asdkeras.audio import SAMPLE_RATE, load_clip

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, path, what in ((axes[0], normal_path, "normal"), (axes[1], anomaly_path, "anomaly")):
        clip = load_clip(path)
        freqs, times, spectrum = stft(clip, SAMPLE_RATE, nperseg=SPECTROGRAM_WINDOW,
                                      noverlap=SPECTROGRAM_WINDOW // 2, boundary=None)
        level = 20 * np.log10(np.maximum(np.abs(spectrum), 1e-10))
        image = axis.imshow(level, origin="lower", aspect="auto", cmap="magma", vmin=level.max() - 80,
                            vmax=level.max(), extent=(times[0], times[-1], freqs[0] / 1000, freqs[-1] / 1000))
        axis.set(title=f"{what}: {os.path.basename(path)}", xlabel="time (s)")
        axis.title.set_fontsize(8)
        figure.colorbar(image, ax=axis, label="dB")
    axes[0].set_ylabel("frequency (kHz)")
    figure.suptitle(f"section {section}: spectrograms")
    figure.tight_layout()
    return figure


def training_figure(runs: list[DetectorRun]):
    """Loss per epoch of every detector with a training history (None when none has one)."""
    import matplotlib.pyplot as plt

    trained = [run for run in runs if run.history and run.history.get("loss")]
    if not trained:
        return None
    figure, axes = plt.subplots(1, len(trained), figsize=(4.2 * len(trained), 3.2), squeeze=False)
    for axis, run in zip(axes[0], trained):
        epochs = np.arange(1, len(run.history["loss"]) + 1)
        axis.plot(epochs, run.history["loss"], marker="o", label="training")
        if run.history.get("val_loss"):
            axis.plot(epochs[:len(run.history["val_loss"])], run.history["val_loss"], marker="o", label="validation")
        phases = run.history.get("phase", [])
        for epoch, (before, after) in enumerate(zip(phases, phases[1:]), start=1):
            if before != after:
                axis.axvline(epoch + 0.5, color="#999999", linestyle=":", label="fine-tuning starts")
        axis.set(title=run.title, xlabel="epoch", ylabel="loss")
        axis.legend(fontsize=8)
    figure.suptitle("training curves")
    figure.tight_layout()
    return figure


def _example_clips(runs: list[DetectorRun], section: str, data_dir: str | None, machine: str) -> tuple[str, str] | None:
    """A normal and an anomalous test clip of the section (source domain where possible) that exist on disk."""
    rows = _section_rows(runs[0], section)
    for domain in ("source", "target", None):
        picked = []
        for label in ("normal", "anomaly"):
            candidates = [r["path"] for r in rows if r["label"] == label and domain in (None, r["domain"])]
            found = next((p for p in (_locate(c, data_dir, machine) for c in candidates) if p), None)
            picked.append(found)
        if all(picked):
            return picked[0], picked[1]
    return None


def _locate(path: str, data_dir: str | None, machine: str) -> str | None:
    if os.path.isfile(path):
        return path
    if data_dir:
        for subset in SUBSETS:
            moved = os.path.join(data_dir, subset, machine, "test", os.path.basename(path))
            if os.path.isfile(moved):
                return moved
    return None


def _cell(value: float | None, best: bool = False) -> str:
    if value is None:
        return "<td>–</td>"
    text = f"{value:.3f}"
    return f"<td class='best'>{text}</td>" if best else f"<td>{text}</td>"


def auc_table(runs: list[DetectorRun]) -> str:
    """Sections down, detectors across with AUC source / AUC target / pAUC each; best value of a row in bold."""
    keys = ("auc_source", "auc_target", "pauc")
    sections = sorted({s for run in runs for s in run.metrics["sections"]})
    head = "".join(f"<th colspan='3'>{html.escape(run.title)}</th>" for run in runs)
    sub = "".join("<th>AUC src</th><th>AUC tgt</th><th>pAUC</th>" for _ in runs)
    rows = []
    for section in sections + ["h-mean"]:
        values = []
        for run in runs:
            figures = run.metrics["sections"]
            if section == "h-mean":
                present = [[figures[s][k] for s in figures if figures[s].get(k) is not None] for k in keys]
                values.append([hmean(p) if p else None for p in present])
            else:
                values.append([figures.get(section, {}).get(k) for k in keys])
        best = [max((v[i] for v in values if v[i] is not None), default=None) for i in range(3)]
        cells = "".join(_cell(v[i], v[i] is not None and v[i] == best[i] and len(runs) > 1)
                        for v in values for i in range(3))
        rows.append(f"<tr><th>{section}</th>{cells}</tr>")
    return (f"<table><tr><th rowspan='2'>section</th>{head}</tr><tr>{sub}</tr>" + "".join(rows) + "</table>")


def decision_table(runs: list[DetectorRun]) -> str:
    """Per detector: official score, and precision, recall, F1, false alarms per domain (means over sections)."""
    header = ("<tr><th>detector</th><th>official score (* fallback)</th><th>threshold</th>"
              + "".join(f"<th>{what} {domain}</th>" for domain in ("src", "tgt")
                        for what in ("precision", "recall", "F1", "false alarms")) + "</tr>")
    def score_of(run):
        return (run.metrics.get("score") or {}).get("value", run.metrics.get("official_score"))

    best = max((score_of(run) for run in runs if score_of(run) is not None), default=None)
    rows = []
    for run in runs:
        sections = run.metrics["sections"].values()

        def mean(key):
            values = [s[key] for s in sections if s.get(key) is not None]
            return float(np.mean(values)) if values else None

        official = score_of(run)
        fallback = (run.metrics.get("score") or {}).get("rule") == "fallback"
        cells = "".join(_cell(mean(f"{what}_{domain}")) for domain in ("source", "target")
                        for what in ("precision", "recall", "f1", "false_alarm"))
        threshold = f"{run.threshold:.4g}" if run.threshold is not None else "–"
        score_cell = _cell(official, official is not None and official == best and len(runs) > 1)
        if fallback:
            score_cell = score_cell.replace("</td>", "*</td>")
        rows.append(f"<tr><th>{html.escape(run.title)}</th>{score_cell}"
                    f"<td>{threshold}</td>{cells}</tr>")
    return "<table>" + header + "".join(rows) + "</table>"


def battery_table(title: str, record: dict, chosen: str | None) -> str:
    """The battery's AUC per candidate: families (and their mean), then every kind; the chosen candidate marked."""
    candidates = {**record.get("candidates", {}), **record.get("single_poolings", {})}
    if not candidates:
        return ""
    families = list(next(iter(candidates.values()))["families"])
    kinds = list(record.get("kinds") or next(iter(candidates.values()))["kinds"])
    eligible = set(record.get("eligible") or record.get("candidates", {}))
    header = ("<tr><th>candidate</th><th>mean</th>" + "".join(f"<th>{html.escape(f)}</th>" for f in families)
              + "".join(f"<th title='{html.escape(str((record.get('kinds') or {}).get(k, {}).get('description', k)))}'>"
                        f"{html.escape(k.replace('_', ' '))}</th>" for k in kinds) + "</tr>")
    rows = []
    for name, figures in candidates.items():
        label = html.escape(name) + (" &#10003;" if name == chosen else "") + ("" if name in eligible else " †")
        rows.append(f"<tr><th>{label}</th>" + _cell(figures["mean"], name == chosen)
                    + "".join(_cell(figures["families"].get(f)) for f in families)
                    + "".join(_cell(figures["kinds"].get(k)) for k in kinds) + "</tr>")
    return (f"<h4>{html.escape(title)}: pseudo-anomaly battery (AUC of held-out normals against altered copies)</h4>"
            f"<table>{header}{''.join(rows)}</table><p class='note'>Rule: {html.escape(record.get('rule', ''))}. "
            f"&#10003;: chosen; †: not eligible (blind to a whole family of faults: recorded for comparison). "
            f"{record.get('normals', '?')} normal clips altered.</p>")


def battery_tables(runs: list[DetectorRun]) -> list[str]:
    """A battery table for every run whose detector recorded one (the default GMM, the ensemble)."""
    tables = []
    for run in runs:
        document = run.detector or {}
        if "battery" in document:
            tables.append(battery_table(run.title, document["battery"], document["battery"].get("chosen")))
        elif "battery" in document.get("ensemble", {}):
            ensemble = document["ensemble"]
            chosen = next((name for name, c in ensemble["battery"]["candidates"].items()
                           if c["members"] == ensemble["members"] and c.get("combine") == ensemble.get("combine")), None)
            tables.append(battery_table(run.title, ensemble["battery"], chosen))
    return [t for t in tables if t]


STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1180px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h3 { margin-top: 1.6em; color: #444; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #d0d0d0; padding: .3em .6em; }
td { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f4f4f4; }
td.best { font-weight: bold; background: #eef6ee; }
img { max-width: 100%; display: block; margin: .6em 0; }
.note { color: #666; font-size: .9em; }
"""


def machine_section(machine: str, runs: list[DetectorRun], data_dir: str | None,
                    images: dict[str, bytes]) -> str:
    """The HTML of one machine type; its PNGs are added to ``images`` (file name -> bytes)."""
    def embed(name: str, figure) -> str:
        images[name] = _png(figure)
        encoded = base64.b64encode(images[name]).decode("ascii")
        return f"<img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"

    parts = [f"<h2 id='{html.escape(machine)}'>{html.escape(machine)}</h2>",
             "<h3>AUC per section (the report's Tables 2 and 3)</h3>", auc_table(runs),
             "<h3>Decisions (means over sections)</h3>", decision_table(runs)]
    notes = [f"{run.title}: {html.escape(run.detector['ensemble']['reason'])} "
             f"({' + '.join(run.detector['ensemble']['members'])})"
             for run in runs if run.detector and "ensemble" in run.detector]
    parts += [f"<p class='note'>{note}</p>" for note in notes]
    batteries = battery_tables(runs)
    if batteries:
        parts += ["<h3>Label-free choices</h3>", *batteries]
    for section in sorted({s for run in runs for s in run.metrics["sections"]}):
        parts.append(f"<h3>Section {section}</h3>")
        parts.append(embed(f"{machine}_section_{section}_roc.png", roc_figure(runs, section)))
        parts.append(embed(f"{machine}_section_{section}_scores.png", histogram_figure(runs, section)))
        clips = _example_clips(runs, section, data_dir, machine)
        if clips:
            parts.append(embed(f"{machine}_section_{section}_spectrograms.png", spectrogram_figure(*clips, section)))
        else:
            parts.append("<p class='note'>No labelled test clip of this section found on disk for a spectrogram "
                         "(pass --data).</p>")
    curves = training_figure(runs)
    if curves is not None:
        parts += ["<h3>Training</h3>", embed(f"{machine}_training.png", curves)]
    return "\n".join(parts)


def write_report(machines: list[str], kinds, result_dir: str, models_dir: str, out_dir: str,
                 data_dir: str | None = None) -> str:
    """Render the page for ``machines`` into ``out_dir`` (HTML and PNGs); return the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    images: dict[str, bytes] = {}
    bodies = [machine_section(m, load_runs(m, kinds, result_dir, models_dir), data_dir, images) for m in machines]
    contents = "".join(f"<a href='#{m}'>{m}</a> " for m in machines) if len(machines) > 1 else ""
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>asdkeras report: "
            f"{html.escape(', '.join(machines))}</title><style>{STYLE}</style></head><body>"
            f"<h1>Anomalous sound detection: {html.escape(', '.join(machines))}</h1>"
            f"<p class='note'>From {html.escape(result_dir)} and {html.escape(models_dir)}. Official score: harmonic "
            f"mean of every section's AUC (source), AUC (target) and pAUC (FPR &le; 0.1). Bold: the best of a row.</p>"
            f"<p>{contents}</p>" + "\n".join(bodies) + "</body></html>")
    for image_name, content in images.items():
        write_bytes(os.path.join(out_dir, image_name), content)
    return write_text(report_path(out_dir, machines), page)
