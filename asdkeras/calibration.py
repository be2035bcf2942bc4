"""Saved detectors judged again in a new operating condition from a few of its normal clips, without retraining.

After a change of operating condition (another speed, load, room or microphone: DCASE's target
domain), a detector that knew the condition from ten clips or not at all flags many of its
normals (README, "When a new condition flags too many normals in use"). The remedy is more
normal clips of the condition. Refitting trains the networks again (minutes to an hour on a
CPU); calibrating keeps every network as trained and measures how it scores the condition:

* a network (the autoencoder, MobileNetV2 and its int8 twin): its operating conditions are
  judged again (:func:`asdkeras.fit.judge_per_condition`) with the new clips among the held-out
  normals of ``<section>/<domain>``: clips it never trained on, so they measure a new clip's
  score without the correction the clips it trained on need, and its threshold is set again on
  the held-out normals, the new ones included;
* the GMM: fitted again, the new clips among its training normals (each target clip a
  component of its condition, as at fit; seconds);
* the ensemble: built again from the calibrated members' statistics, its choice of members and
  combination kept (the battery is not run again: its normals are the clips it chose on).

The clips are recorded in each detector's ``config.json`` (``calibration``), so calibrating
again adds to them and the ensemble knows which clips its members trained on. ``fit`` starts
afresh without them: to keep them in a refit, put them in the dataset's training folder.
TFLite files exported before calibrating hold the old statistics: export again.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace

from asdkeras import detectors
from asdkeras.data.records import audio_files
from asdkeras.detectors.config import MIN_HELD_OUT_PER_CONDITION
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.kinds import ENSEMBLE
from asdkeras.names import CACHE_DIR, CONFIG_FILE, DETECTOR_FILE, ENSEMBLE_FILE, MODELS_DIR, detector_dir, saved_variants
from asdkeras.progress import Progress, no_progress

DOMAINS = ("target", "source")
"""Domains a calibration clip may join: a new operating condition is DCASE's target domain."""


def judge_network_again(folder: str, config, descriptor, progress: Progress = no_progress,
                        skipped: SkippedFiles | None = None):
    """The network saved in ``folder`` (and its variants), its operating conditions and threshold
    judged again from the training normals of ``config`` (its calibration clips held out), saved
    in place atomically with ``config`` as its ``config.json``; returns the new
    :class:`~asdkeras.detector.Detector`.

    ``descriptor``: the kind's clip-descriptor layer, used when the saved model was judged in one
    condition and so holds none. Thresholds the conditions do not set (MobileNetV2's ``eq2``,
    which rests on the source conditions) are kept as saved.
    """
    from dataclasses import asdict

    from asdkeras.detector import Detector
    from asdkeras.fit import cached_features, judge_per_condition
    from asdkeras.models.conditions import conditioned_parts

    detector = Detector.load(folder, variants=True)
    trained, held_out = cached_features(detector.frontend.cache(config.cache_dir), list(config.normal_split()),
                                        progress, skipped)
    first = None

    def judged(saved: Detector) -> Detector:
        nonlocal first
        result = judge_per_condition(*conditioned_parts(saved.model, descriptor), saved.frontend, trained, held_out,
                                     config.threshold_quantile, config.seed, like=first,
                                     confidence=config.threshold_confidence)
        first = first or result
        return replace(saved, model=result.model, thresholds={**saved.thresholds, **result.thresholds},
                       normal_scores=result.normal_scores, info={**saved.info, **result.info()})

    new = judged(detector)
    new.variants = {name: judged(variant) for name, variant in detector.variants.items()}
    document = asdict(config)
    new.save(folder, {**kept_documents(folder), CONFIG_FILE: document},
             {name: {**kept_documents(sub), CONFIG_FILE: document} for name, sub in saved_variants(folder).items()})
    return new


def kept_documents(folder: str) -> dict:
    """The JSON documents of a detector folder other than ``detector.json`` (config, history, split), by file name."""
    import json

    documents = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json") and name != DETECTOR_FILE:
            with open(os.path.join(folder, name)) as handle:
                documents[name] = json.load(handle)
    return documents


def saved_kinds(machine: str, models_dir: str) -> list[str]:
    """The kinds with a detector saved for ``machine`` (registry order: the ensemble after its members)."""
    found = [kind for kind in detectors.detector_kinds()
             if os.path.isfile(os.path.join(detector_dir(models_dir, machine, kind), DETECTOR_FILE))]
    if not found:
        raise AsdError(f"{models_dir}/{machine}: no saved detector to calibrate; run 'python cli.py fit --machine "
                       f"{machine} --model all' first")
    return found


def calibration_clips(paths: list[str], section: str | None, domain: str | None, known_sections: list[str],
                      channel: int | None, skipped: SkippedFiles) -> list[dict]:
    """The readable audio files of ``paths`` (files and folders) as calibration clips, each with its
    section and domain.

    ``section`` and ``domain`` given apply to every clip; left out, a DCASE name says them
    (``section_01_target_train_normal_0042_...``: one call calibrates several sections), else the
    section is the detector's only one and the domain "target" (a new operating condition). A
    name labelled as an anomaly is refused; an unreadable file goes to ``skipped`` (or stops the
    run when it is strict); fewer than 2 readable clips is an error.
    """
    from asdkeras.battery import decode_readable
    from asdkeras.data.records import parse_filename

    if domain is not None and domain not in DOMAINS:
        raise AsdError(f"domain '{domain}' is not one of {', '.join(DOMAINS)}")
    if section is not None and section not in known_sections:
        raise AsdError(f"section '{section}' is not one of the detector's ({', '.join(known_sections)}); a new "
                       f"machine or product needs its own fit")
    clips = []
    for path in audio_files(paths):
        try:
            named = parse_filename(path, "", "train")
        except AsdError:
            named = None
        if named is not None and named.label == "anomaly":
            raise AsdError(f"{path}: named as an anomaly; calibrate with normal clips only")
        clip_section = section or (named.section if named else None)
        if clip_section is None:
            if len(known_sections) != 1:
                raise AsdError(f"{path}: its name does not say its section and the detector knows sections "
                               f"{', '.join(known_sections)}: name it with --section")
            clip_section = known_sections[0]
        if clip_section not in known_sections:
            raise AsdError(f"{path}: section {clip_section} is not one of the detector's ({', '.join(known_sections)}); "
                           f"a new machine or product needs its own fit")
        clip_domain = domain or (named.domain if named and named.domain else "target")
        clips.append({"path": os.path.abspath(path), "section": clip_section, "domain": clip_domain})
    readable, _ = decode_readable([clip["path"] for clip in clips], channel, skipped)
    if len(readable) < 2:
        raise AsdError(f"{', '.join(paths)}: {len(readable)} readable clip(s); a condition is measured on at least 2 "
                       f"(at least {MIN_HELD_OUT_PER_CONDITION}, better 20 or more)")
    readable = set(readable)
    return [clip for clip in clips if clip["path"] in readable]


def fitted_normals(config) -> list:
    """The training normals the detectors of ``config`` were fitted on (its calibration clips left out)."""
    return [r for part in replace(config, calibration=()).normal_split() for r in part]


def check_new(clips: list[dict], config, fitted: list | None = None) -> None:
    """A one-line error when a calibration clip is one of the machine's test clips (its results would
    be biased) or already one of the training normals the detectors were fitted on (counted twice;
    ``fitted``: those records, when the caller has them, else :func:`fitted_normals`)."""
    from asdkeras.data.layout import scan_split

    test = {os.path.abspath(r.path) for r in scan_split(config.data_dir, config.machine, "test", config.subset,
                                                        missing_ok=True)}
    trained = {os.path.abspath(r.path) for r in (fitted_normals(config) if fitted is None else fitted)}
    for known, what, advice in ((test, "test", "calibrate with normal clips recorded apart from the test set"),
                                (trained, "training", "the detectors know it already")):
        shared = [clip["path"] for clip in clips if clip["path"] in known]
        if shared:
            raise AsdError(f"{shared[0]}: one of {config.machine}'s {what} clips ({len(shared)} of the {len(clips)} "
                           f"given); {advice}")


def calibration_counts(folder: str, info: dict) -> dict[str, int]:
    """Condition (``"<section>/<domain>"``) -> calibration clips of the detector saved in ``folder``
    (``info``: its ``detector.json`` facts; an ensemble's are its members')."""
    import json

    ensemble = info.get("ensemble")
    folders = [ensemble["candidates"][kind] for kind in ensemble["members"]] if ensemble else [folder]
    counts: dict[str, int] = {}
    for member in folders:
        try:
            with open(os.path.join(member, CONFIG_FILE)) as handle:
                clips = json.load(handle).get("calibration", [])
        except (OSError, ValueError):
            continue
        counts.update({group: max(count, counts.get(group, 0)) for group, count in group_counts(clips).items()})
    return dict(sorted(counts.items()))


def group_counts(clips) -> dict[str, int]:
    """Condition (``"<section>/<domain>"``) -> how many of the calibration ``clips`` it holds, sorted."""
    return dict(sorted(Counter(f"{clip['section']}/{clip['domain']}" for clip in clips).items()))


def merged(before: tuple, added: list[dict]) -> tuple:
    """``before``'s calibration clips and the ``added`` ones, a path given again taking its new section and domain."""
    by_path = {clip["path"]: dict(clip) for clip in before}
    by_path.update({clip["path"]: clip for clip in added})
    return tuple(by_path.values())


@dataclass
class Calibration:
    """What :func:`calibrate` did.

    Attributes
    ----------
    machine : str
    added : int
        Clips given this time that the detectors did not hold yet (readable ones).
    given : int
        Clips given this time (readable ones), those held already included.
    clips : tuple of dict
        Every calibration clip the detectors now hold (``{"path", "section", "domain"}``).
    done : list of (kind, folder, Detector)
        Each calibrated detector, members first, then the ensemble.
    models_dir : str
    """

    machine: str
    added: int
    given: int
    clips: tuple
    done: list
    models_dir: str

    def lines(self) -> list[str]:
        """What ``calibrate`` says: the clips, then per detector how it was calibrated and its fit summary."""
        from asdkeras.jobs import FitJob, job_lines

        again = f" ({self.given - self.added} given again)" if self.given > self.added else ""
        lines = [f"{self.machine}: {self.added} normal clips added{again}; calibration clips in all: "
                 + ", ".join(f"{count} of {group}" for group, count in group_counts(self.clips).items())]
        for kind, folder, detector in self.done:
            how = ("built again from the calibrated members, its choice kept" if kind == ENSEMBLE else
                   "network kept, its conditions and threshold judged again" if detectors.get(kind).calibrate
                   else "fitted again")
            lines.append(f"== {kind}: {how}")
            lines += job_lines(FitJob(self.machine, kind, models_dir=self.models_dir), detector)
        return lines


def calibrate(machine: str, paths: list[str], section: str | None = None, domain: str | None = None,
              models_dir: str = MODELS_DIR, data_dir: str | None = None, cache_dir: str = CACHE_DIR,
              progress: Progress = no_progress, skipped: SkippedFiles | None = None) -> Calibration:
    """Calibrate every detector saved for ``machine`` with the normal clips in ``paths``.

    Parameters
    ----------
    machine : str
    paths : list of str
        Audio files and folders (searched recursively) of normal clips of one operating
        condition of ``section`` (recorded apart from the test set).
    section : str, optional
        The section (machine or product) they belong to (None: as their DCASE names say, or the
        detectors' only section).
    domain : {"target", "source"}, optional
        The condition group they join, ``<section>/<domain>`` (None: as their names say, else "target").
    models_dir, data_dir, cache_dir : str
        Saved detectors, the dataset they were fitted on (default: the one recorded) and the
        feature cache.
    skipped : SkippedFiles, optional
        Unreadable files are recorded there and left out; without it the first one raises.

    Returns
    -------
    Calibration
    """
    from asdkeras.ensemble import fit_ensemble
    from asdkeras.fit import load_config

    skipped = SkippedFiles.or_strict(skipped)
    kinds = saved_kinds(machine, models_dir)
    folders = {kind: detector_dir(models_dir, machine, kind) for kind in kinds}
    configs = {kind: load_config(folders[kind], kind) for kind in kinds if kind != ENSEMBLE}
    if not configs:
        raise AsdError(f"{models_dir}/{machine}: only an ensemble is saved, its members are gone; refit with "
                       f"'python cli.py fit --machine {machine} --model all'")
    configs = {kind: replace(config, data_dir=data_dir or config.data_dir, cache_dir=cache_dir, models_dir=models_dir,
                             output_dir=None) for kind, config in configs.items()}
    first = next(iter(configs.values()))
    fitted = fitted_normals(first)  # the dataset scanned once for both: its sections, and the clips not to add
    clips = calibration_clips(paths, section, domain, sorted({r.section for r in fitted}), first.channel, skipped)
    check_new(clips, first, fitted)
    done, every = [], merged(first.calibration, clips)
    try:
        for kind, config in configs.items():
            config = replace(config, calibration=merged(config.calibration, clips))
            spec = detectors.get(kind)
            detector = (spec.calibrate(folders[kind], config, progress, skipped) if spec.calibrate
                        else spec.fit(config, progress, 0, skipped))
            done.append((kind, folders[kind], detector))
        if ENSEMBLE in kinds:
            documents = kept_documents(folders[ENSEMBLE])
            saved, choice = documents[CONFIG_FILE], documents.get(ENSEMBLE_FILE)  # without its record: chosen again
            detector = fit_ensemble(machine, models_dir, saved["mode"], saved["combine"], kinds=saved.get("kinds"),
                                    data_dir=first.data_dir, cache_dir=cache_dir, progress=progress, skipped=skipped,
                                    kept=choice)
            done.append((ENSEMBLE, folders[ENSEMBLE], detector))
    except AsdError as exc:  # each folder is written atomically, the set is not: say what to run to finish it
        if not done:
            raise
        raise AsdError(f"{exc} (calibrated before it stopped: {', '.join(kind for kind, _, _ in done)}; the same "
                       f"calibrate command again finishes the others)") from None
    held = {clip["path"] for clip in first.calibration}
    return Calibration(machine, sum(clip["path"] not in held for clip in clips), len(clips), every, done, models_dir)
