"""Physically motivated sound models of the seven DCASE machine types, in numpy.

Each model renders one 10 s clip at 16 kHz from a :class:`Condition` (operating point and
recording set-up) and, for anomalies, a fault type and a severity in (0, 1]. Signals are float64
arrays of ``n`` samples with unit RMS before mixing; :func:`render` adds the background noise at
the condition's SNR and applies the microphone and room response.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy.signal import butter, fftconvolve, sosfilt

from asdkeras.audio import SAMPLE_RATE as SR  # the package's one sample rate, short for the formulas


@dataclass(frozen=True)
class Condition:
    """Operating point and recording set-up of one clip.

    speed : rotation or motion rate relative to nominal (1.0)
    load : mechanical load relative to nominal (1.0); scales tonal components against noise
    noise : background type, one of ``factory_a``, ``factory_b``, ``hall``
    snr_db : machine-to-background power ratio in dB
    mic : microphone response, ``flat``, ``dark`` (low-pass) or ``bright`` (high-pass)
    room : reverberant share in [0, 1) (0 = dry)
    pattern : valve open/close programme 0..3
    """

    speed: float = 1.0
    load: float = 1.0
    noise: str = "factory_a"
    snr_db: float = 6.0
    mic: str = "flat"
    room: float = 0.0
    pattern: int = 0
    extra: dict = field(default_factory=dict, compare=False, hash=False)


# ---- primitives -------------------------------------------------------------------------------

def _time(n: int) -> np.ndarray:
    return np.arange(n) / SR


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def shaped_noise(n: int, rng: np.random.Generator, exponent: float = 0.0,
                 low_hz: float = 0.0, high_hz: float = SR / 2) -> np.ndarray:
    """Gaussian noise with power ~ 1/f**exponent inside [low_hz, high_hz], unit RMS."""
    # scipy's FFT: 4x numpy's on 160,000 samples, equal to 1e-15 relative (the written 16-bit clips are the same)
    spectrum = scipy.fft.rfft(rng.standard_normal(n))
    return _unit_rms(scipy.fft.irfft(spectrum * _noise_gain(n, exponent, low_hz, high_hz), n))


@functools.lru_cache(maxsize=64)
def _noise_gain(n: int, exponent: float, low_hz: float, high_hz: float) -> np.ndarray:
    """The amplitude gain per rFFT bin of :func:`shaped_noise` (read-only: shared between calls)."""
    freqs = np.fft.rfftfreq(n, 1 / SR)
    gain = np.where((freqs >= low_hz) & (freqs <= high_hz), 1.0, 0.0)
    gain[1:] *= freqs[1:] ** (-exponent / 2)
    gain[0] = 0.0
    gain.setflags(write=False)
    return gain


def tone_series(f0: np.ndarray | float, amps, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of harmonics ``k * f0`` (k = 1..len(amps)) with random phases; f0 may vary per sample."""
    f0 = np.broadcast_to(np.asarray(f0, dtype=float), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    out, harmonic = np.zeros(n), np.empty(n)
    for k, a in enumerate(amps, start=1):
        if a and k * f0.max() < SR / 2 - 200:  # a * sin(k * phase + random phase), in place
            np.multiply(phase, k, out=harmonic)
            harmonic += rng.uniform(0, 2 * np.pi)
            np.sin(harmonic, out=harmonic)
            harmonic *= a
            out += harmonic
    return out


def drifting_rate(rate_hz: float, n: int, rng: np.random.Generator, drift: float = 0.01) -> np.ndarray:
    """A rate that wanders slowly (about ``drift`` relative, over seconds) around ``rate_hz``."""
    knots = rng.standard_normal(6) * drift
    return rate_hz * (1 + np.interp(np.linspace(0, 5, n), np.arange(6), knots))


def ringing_impacts(times_s, n: int, rng: np.random.Generator, ring_hz: float, decay_s: float,
                    amps=None) -> np.ndarray:
    """Impacts at ``times_s`` seconds, each a decaying sinusoid at ``ring_hz`` (with some spread)."""
    impulses = np.zeros(n)
    idx = (np.asarray(times_s) * SR).astype(int)
    keep = (idx >= 0) & (idx < n)
    weights = np.ones(len(idx)) if amps is None else np.asarray(amps, dtype=float)
    np.add.at(impulses, idx[keep], weights[keep] * rng.uniform(0.7, 1.3, keep.sum()))
    length = int(decay_s * 6 * SR)
    tt = np.arange(length) / SR
    template = np.exp(-tt / decay_s) * (np.sin(2 * np.pi * ring_hz * tt)
                                        + 0.5 * np.sin(2 * np.pi * ring_hz * 1.63 * tt))
    return fftconvolve(impulses, template)[:n]


def periodic_times(rate_hz: float, n: int, rng: np.random.Generator, jitter: float = 0.0) -> np.ndarray:
    """Event times in seconds at ``rate_hz`` with a random start and relative period jitter."""
    period = 1.0 / rate_hz
    count = int(n / SR * rate_hz) + 2
    steps = period * (1 + jitter * rng.standard_normal(count))
    return rng.uniform(0, period) + np.concatenate([[0.0], np.cumsum(steps[:-1])])


def bandpass(x: np.ndarray, low_hz: float, high_hz: float, order: int = 2) -> np.ndarray:
    sos = butter(order, [low_hz, min(high_hz, SR / 2 - 100)], btype="bandpass", fs=SR, output="sos")
    return sosfilt(sos, x)


# ---- background, microphone, room -------------------------------------------------------------

def background(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Factory background noise of one of three types, unit RMS."""
    if kind == "factory_a":  # pink noise with mains hum
        x = shaped_noise(n, rng, exponent=1.0, low_hz=20) + 0.3 * tone_series(50.0, [1, 0.6, 0.4], n, rng)
    elif kind == "factory_b":  # brown noise with distant impacts
        x = shaped_noise(n, rng, exponent=1.6, low_hz=20)
        times = rng.uniform(0, n / SR, rng.poisson(6))
        x = x + 2.0 * _unit_rms(ringing_impacts(times, n, rng, rng.uniform(300, 900), 0.04) + 1e-9)
    elif kind == "hall":  # brighter noise with slow babble-like modulation
        envelope = 1 + 0.6 * np.interp(np.arange(n), np.linspace(0, n, 40), rng.random(40))
        x = shaped_noise(n, rng, exponent=0.4, low_hz=80, high_hz=5000) * envelope
    else:
        raise ValueError(f"unknown background noise type '{kind}'")
    return _unit_rms(x)


def microphone(x: np.ndarray, kind: str) -> np.ndarray:
    """Apply a microphone frequency response: flat, dark (low-pass 2.5 kHz) or bright (high-pass 400 Hz)."""
    if kind == "flat":
        return x
    if kind == "dark":
        return sosfilt(butter(2, 2500, btype="lowpass", fs=SR, output="sos"), x)
    if kind == "bright":
        return sosfilt(butter(2, 400, btype="highpass", fs=SR, output="sos"), x)
    raise ValueError(f"unknown microphone response '{kind}'")


def room(x: np.ndarray, wet: float, rng: np.random.Generator) -> np.ndarray:
    """Mix in a reverberant copy (exponentially decaying noise tail, RT60 about 0.6 s)."""
    if wet <= 0:
        return x
    tt = np.arange(int(0.5 * SR)) / SR
    tail = rng.standard_normal(tt.size) * np.exp(-tt * 6.9 / 0.6)
    wet_signal = _unit_rms(fftconvolve(x, tail)[: x.size]) * np.sqrt(np.mean(x ** 2))
    return (1 - wet) * x + wet * wet_signal


# ---- machines -----------------------------------------------------------------------------------
# Each returns unit-RMS machine sound; `fault` is None for normal clips.

def fan(c: Condition, n: int, rng: np.random.Generator, fault: str | None, sev: float) -> np.ndarray:
    rot = drifting_rate(22.0 * c.speed * rng.uniform(0.985, 1.015), n, rng, 0.004)
    bpf = 7 * rot
    amps = [rng.uniform(0.8, 1.2) / k ** 0.8 for k in range(1, 13)]
    tones = _unit_rms(tone_series(bpf, amps, n, rng))
    flow = shaped_noise(n, rng, exponent=0.8, low_hz=40, high_hz=1500 * c.speed)
    x = c.load * tones + 0.8 * flow * c.speed
    t = _time(n)
    if fault == "imbalance":
        x = x * (1 + 0.6 * sev * np.sin(2 * np.pi * np.cumsum(rot) / SR)) + 1.2 * sev * tone_series(rot, [1, 0.5], n, rng)
    elif fault == "blade_damage":
        x = x + 0.5 * sev * _unit_rms(tone_series(rot, [1.0 / k ** 0.3 for k in range(1, 31)], n, rng))
    elif fault == "clogging":
        x = (1 - 0.5 * sev) * c.load * tones + 0.8 * c.speed * shaped_noise(n, rng, 0.8, 40, 1500 * c.speed) \
            + 0.8 * sev * shaped_noise(n, rng, 0.2, 2000, 5000) * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    return _unit_rms(x)


def gearbox(c: Condition, n: int, rng: np.random.Generator, fault: str | None, sev: float) -> np.ndarray:
    shaft = drifting_rate(18.0 * c.speed * rng.uniform(0.99, 1.01), n, rng, 0.005)
    mesh = 23 * shaft
    phase_shaft = 2 * np.pi * np.cumsum(shaft) / SR
    sideband_depth = 0.15 + (0.7 * sev if fault == "wear" else 0.0)
    modulation = 1 + sideband_depth * np.sin(phase_shaft) + (0.6 * sev * np.sin(2 * phase_shaft) if fault == "misalignment" else 0)
    gears = tone_series(mesh, [1.0, 0.5, 0.3, 0.15], n, rng) * modulation
    x = c.load * _unit_rms(gears) + 0.6 * shaped_noise(n, rng, exponent=1.0, low_hz=30, high_hz=6000)
    if fault == "missing_tooth":
        times = periodic_times(float(shaft.mean()), n, rng, jitter=0.002)
        x = x + 2.2 * sev * _unit_rms(ringing_impacts(times, n, rng, 2600.0, 0.004))
    return _unit_rms(x)


def bearing(c: Condition, n: int, rng: np.random.Generator, fault: str | None, sev: float) -> np.ndarray:
    shaft = 25.0 * c.speed * rng.uniform(0.99, 1.01)
    hum = tone_series(drifting_rate(shaft, n, rng, 0.003), [1.0, 0.4, 0.2], n, rng)
    resonance = bandpass(shaped_noise(n, rng), 2600, 3800)
    x = _unit_rms(hum) * c.load + 0.7 * _unit_rms(resonance) + 0.6 * shaped_noise(n, rng, 1.2, 20)
    random_ticks = rng.uniform(0, n / SR, rng.poisson(15))
    x = x + 0.3 * _unit_rms(ringing_impacts(random_ticks, n, rng, 3300.0, 0.002))
    if fault == "outer_race":
        times = periodic_times(3.58 * shaft, n, rng, jitter=0.01)
        x = x + 1.0 * sev * _unit_rms(ringing_impacts(times, n, rng, 3300.0, 0.002))
    elif fault == "inner_race":
        times = periodic_times(5.42 * shaft, n, rng, jitter=0.01)
        amps = 1 + 0.8 * np.sin(2 * np.pi * shaft * times)
        x = x + 1.0 * sev * _unit_rms(ringing_impacts(times, n, rng, 4200.0, 0.002, amps))
    elif fault == "lubrication":
        x = x + 0.8 * sev * shaped_noise(n, rng, 0.0, 4000, 7500)
    return _unit_rms(x)


def slider(c: Condition, n: int, rng: np.random.Generator, fault: str | None, sev: float) -> np.ndarray:
    period = 1.6 / c.speed * rng.uniform(0.98, 1.02)
    t = _time(n)
    cycle = ((t + rng.uniform(0, period)) % period) / period
    moving = np.clip(np.sin(2 * np.pi * cycle), 0, None) + np.clip(-np.sin(2 * np.pi * cycle), 0, None) * 0.8
    friction_band = (200, 2000) if fault != "no_grease" else (200 + 600 * sev, 2000 + 2500 * sev)
    friction = _unit_rms(bandpass(shaped_noise(n, rng), *friction_band)) * moving
    whine = tone_series(180 * c.speed, [1.0, 0.5, 0.3], n, rng) * moving
    stops = np.arange(rng.uniform(0, period / 2), n / SR, period / 2)
    x = friction * (1 + 0.6 * sev * (fault == "no_grease")) + 0.6 * whine * c.load \
        + 0.8 * _unit_rms(ringing_impacts(stops, n, rng, 700.0, 0.01)) + 0.2 * shaped_noise(n, rng, 1.0, 20)
    if fault == "rattle":
        clicks = rng.uniform(0, n / SR, rng.poisson(150 * sev))
        clicks = clicks[moving[(clicks * SR).astype(int)] > 0.3]
        x = x + 0.7 * sev * _unit_rms(ringing_impacts(clicks, n, rng, 1800.0, 0.003) + 1e-9)
    elif fault == "squeal":
        x = x + 0.4 * sev * tone_series(rng.uniform(1600, 2400), [1.0, 0.3], n, rng) * moving
    return _unit_rms(x)


_VALVE_PATTERNS = (  # (open at, close at) in seconds within a 2 s cycle
    ((0.1, 0.7),), ((0.1, 0.4), (1.0, 1.3)), ((0.2, 1.2),), ((0.1, 0.3), (0.6, 0.8), (1.1, 1.3)))


def valve(c: Condition, n: int, rng: np.random.Generator, fault: str | None, sev: float) -> np.ndarray:
    """A solenoid valve: an open/close programme of clicks (the armature's two resonances) and flow noise.

    Faults, after the physics of real valves (DCASE valve recordings are max-pooling-best):

    * ``contamination``: debris on the seat; about a third of the closings strike it: a hard
      knock of the armature's resonance 10-40 ms after the click, up to three times as loud;
    * ``chatter``: the armature chatters at opening: a burst of 3-6 clicks within 60 ms;
    * ``leak``: hiss between the openings (stationary).

    (A ``timing`` fault, the closing displaced, was dropped: every pooling of levels scored it
    below chance, and real valve recordings (DCASE's contamination faults) have no such fault.)

    The extra clicks are added at the normal clicks' level (the clip is not re-normalised before
    the background is mixed in), so a transient fault adds energy in a few frames and leaves the
    rest of the clip as it was.
    """
    cycle_s = 2.0 / c.speed
    t = _time(n)
    is_open = np.zeros(n)
    opens, closes = [], []
    for start in np.arange(-rng.uniform(0, cycle_s), n / SR, cycle_s):
        for a, b in _VALVE_PATTERNS[c.pattern % len(_VALVE_PATTERNS)]:
            a, b = a / c.speed, b / c.speed
            opens.append(start + a)
            closes.append(start + b)
            is_open[(t >= start + a) & (t < start + b)] = 1.0
    smooth = np.convolve(is_open, np.ones(160) / 160, mode="same")
    flow = _unit_rms(bandpass(shaped_noise(n, rng), 1000, 5000)) * smooth
    clicks = np.concatenate([opens, closes])
    click_sound = ringing_impacts(clicks, n, rng, 2500.0, 0.006) + 0.5 * ringing_impacts(clicks, n, rng, 900.0, 0.01)
    click_gain = 1.5 / (np.sqrt(np.mean(click_sound ** 2)) + 1e-12)
    x = click_gain * click_sound + 0.7 * flow + 0.25 * tone_series(120.0, [1.0, 0.5], n, rng)
    if fault == "contamination":  # some closings hit the debris: a hard knock just after the click
        knocks = np.array([close + rng.uniform(0.01, 0.04) for close in closes if rng.random() < 0.3] or
                          [closes[rng.integers(len(closes))] + 0.02])
        x = x + click_gain * (1.0 + 2.0 * sev) * ringing_impacts(knocks, n, rng, 2500.0, 0.004)
    elif fault == "chatter":
        times = np.concatenate([o + np.sort(rng.uniform(0.005, 0.06, rng.integers(3, 7))) for o in opens])
        x = x + click_gain * (0.4 + 0.6 * sev) * ringing_impacts(times, n, rng, 2500.0, 0.004)
    elif fault == "leak":
        x = x + 0.25 * sev * _unit_rms(bandpass(shaped_noise(n, rng), 3000, 7000)) * (1 - smooth)
    x = x + 0.05 * shaped_noise(n, rng, 1.0, 20)
    return _unit_rms(x)


def toycar(c: Condition, n: int, rng: np.random.Generator, fault: str | None, sev: float) -> np.ndarray:
    motor = drifting_rate(380.0 * c.speed * rng.uniform(0.98, 1.02), n, rng, 0.01)
    whine = _unit_rms(tone_series(motor, [1.0, 0.6, 0.4, 0.3, 0.2], n, rng))
    gears = _unit_rms(tone_series(motor * 4.0, [1.0, 0.3], n, rng))
    wheel = float(motor.mean()) / 42.0
    rumble = shaped_noise(n, rng, 1.3, 20, 800)
    x = c.load * whine + 0.4 * gears + 0.7 * rumble
    phase_wheel = 2 * np.pi * np.cumsum(np.full(n, wheel)) / SR
    if fault == "bent_shaft":
        x = x * (1 + 0.8 * sev * np.sin(phase_wheel))
    elif fault == "tire":
        times = periodic_times(wheel, n, rng, 0.01)
        x = x + 1.5 * sev * _unit_rms(ringing_impacts(times, n, rng, 250.0, 0.02))
    elif fault == "gear_chip":
        times = periodic_times(wheel * 3, n, rng, 0.01)
        x = x + 1.1 * sev * _unit_rms(ringing_impacts(times, n, rng, 3000.0, 0.003))
    return _unit_rms(x)


def toytrain(c: Condition, n: int, rng: np.random.Generator, fault: str | None, sev: float) -> np.ndarray:
    motor = drifting_rate(220.0 * c.speed * rng.uniform(0.98, 1.02), n, rng, 0.01)
    hum = _unit_rms(tone_series(motor, [1.0, 0.7, 0.5, 0.3], n, rng))
    joint_period = 0.45 / c.speed
    joints = periodic_times(1 / joint_period, n, rng, 0.02)
    clatter_times = np.concatenate([joints, joints + 0.08 / c.speed])
    if fault == "derailment":
        extra = rng.uniform(0, n / SR, rng.poisson(40 * sev))
        clatter_times = np.concatenate([clatter_times + rng.normal(0, 0.02 * sev, clatter_times.size), extra])
    clatter = _unit_rms(ringing_impacts(clatter_times, n, rng, 1200.0, 0.008))
    x = 0.7 * c.load * hum + clatter + 0.5 * shaped_noise(n, rng, 1.2, 20, 3000)
    if fault == "flat_wheel":
        times = periodic_times(6.0 * c.speed, n, rng, 0.01)
        x = x + 1.3 * sev * _unit_rms(ringing_impacts(times, n, rng, 180.0, 0.02))
    elif fault == "motor":
        rough = 1 + 1.0 * sev * shaped_noise(n, rng, 1.0, 5, 60)
        x = 0.7 * c.load * hum * rough + clatter + 0.5 * shaped_noise(n, rng, 1.2, 20, 3000)
    return _unit_rms(x)


MACHINE_MODELS = {
    "fan": (fan, ("imbalance", "blade_damage", "clogging")),
    "gearbox": (gearbox, ("missing_tooth", "wear", "misalignment")),
    "bearing": (bearing, ("outer_race", "inner_race", "lubrication")),
    "slider": (slider, ("rattle", "squeal", "no_grease")),
    "valve": (valve, ("leak", "contamination", "chatter")),
    "ToyCar": (toycar, ("bent_shaft", "tire", "gear_chip")),
    "ToyTrain": (toytrain, ("flat_wheel", "derailment", "motor")),
}
"""Machine type -> (sound model, its fault types)."""

RECORDING_LEVEL_DB = {"fan": -26.0, "gearbox": -24.0, "bearing": -32.0, "slider": -32.0, "valve": -40.0,
                      "ToyCar": -28.0, "ToyTrain": -28.0}
"""Machine type -> nominal RMS level of its clips, dBFS: the recorder's gain, set per type, as a
recordist sets it, so that the type's loudest impacts stay below full scale.

A mixture's peak over its RMS (crest factor) is 12-13 dB for fan and gearbox and 29-30 dB for
valve (medians); the largest of 138 clips a type (seed 7) were 20-27 dB for the six others and
35.5 dB for valve (a contamination knock). At one level of -20 dBFS every valve clip and most
slider, bearing and ToyTrain clips were clipped: the clicks and knocks that make their faults were
cut flat, and testing the synthetic valve noted 118 of its 120 test clips as clipped. Each level
here leaves at least 2 dB between that largest peak, at the top of the clip's level jitter
(:data:`LEVEL_JITTER_DB`), and full scale."""
LEVEL_JITTER_DB = 1.5
"""Each clip's level varies uniformly within this many dB of its type's :data:`RECORDING_LEVEL_DB`."""

FAULT_SHARES = {"valve": (0.2, 0.5, 0.3)}
"""Machine type -> share of each fault type among its anomalies, where not equal. Valve: real valve
recordings' faults are mostly contamination (DCASE's valve anomalies are all of that family), so
the transient faults make up 80 %."""


def render(machine: str, condition: Condition, n: int, rng: np.random.Generator,
           fault: str | None = None, severity: float = 0.0, level_db: float | None = None) -> np.ndarray:
    """One clip: machine sound + background at ``condition.snr_db``, through mic and room.

    Returns float32 samples scaled so the mixture's RMS is ``level_db`` dBFS (None: the type's
    :data:`RECORDING_LEVEL_DB`).
    """
    model, _ = MACHINE_MODELS[machine]
    machine_sound = model(condition, n, rng, fault, severity)
    noise = background(condition.noise, n, rng)
    mixture = machine_sound + noise * 10 ** (-condition.snr_db / 20)
    mixture = room(microphone(mixture, condition.mic), condition.room, rng)
    level_db = RECORDING_LEVEL_DB[machine] if level_db is None else level_db
    mixture = _unit_rms(mixture) * 10 ** (level_db / 20)
    return np.clip(mixture, -1.0, 1.0).astype(np.float32)
