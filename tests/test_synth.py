import os

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asdkeras.audio import FULL_SCALE, describe, load_clip
from asdkeras.data.layout import MACHINE_TYPES, parse_filename, scan_split, select
from asdkeras.data.synth import SCALES, SECTIONS, Scale, generate, plan, render_clip
from asdkeras.data.synth_sounds import RECORDING_LEVEL_DB
from asdkeras.errors import AsdError
from asdkeras.simple_detector import clip_statistics, nearest_neighbour_scores
from conftest import CHECK_SCALE, SMALL_SEED


@pytest.mark.parametrize("scale_name, train_src, test_per", [("small", 50, 10), ("full", 990, 50)])
def test_plan_counts_match_the_scale(scale_name, train_src, test_per):
    specs = plan(["gearbox"], SCALES[scale_name])
    assert len(specs) == SCALES[scale_name].clips_per_machine()
    for section in ("00", "01", "02"):
        in_section = [s for s in specs if s.section == section]
        assert sum(s.split == "train" and s.domain == "source" for s in in_section) == train_src
        assert sum(s.split == "train" and s.domain == "target" for s in in_section) == 10
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                assert sum(s.split == "test" and s.domain == domain and s.label == label for s in in_section) == test_per


def test_small_scale_is_a_few_hundred_clips_per_machine():
    assert 200 <= SCALES["small"].clips_per_machine() <= 500


def test_every_planned_name_parses_back_with_the_same_fields():
    for spec in plan(MACHINE_TYPES, Scale(2, 1, 1)):
        record = parse_filename(spec.relpath, spec.machine, spec.split)
        assert (record.section, record.domain, record.label, record.index, record.attributes) == \
            (spec.section, spec.domain, spec.label, spec.index, spec.attributes)
        assert record.attribute_pairs, spec.relpath


def test_target_domain_attributes_differ_from_source_in_every_section():
    specs = plan(MACHINE_TYPES, Scale(20, 10, 0))
    for machine in MACHINE_TYPES:
        for section in ("00", "01", "02"):
            source = {s.attributes for s in specs if (s.machine, s.section, s.domain) == (machine, section, "source")}
            target = {s.attributes for s in specs if (s.machine, s.section, s.domain) == (machine, section, "target")}
            assert source and target and not source & target, (machine, section)


def test_each_section_shifts_a_real_parameter_between_domains():
    specs = plan(MACHINE_TYPES, Scale(20, 10, 0))
    for machine, (_, section_specs) in SECTIONS.items():
        for number, attribute_specs in enumerate(section_specs):
            shifted = [a for a in attribute_specs if a.target is not None]
            assert shifted, (machine, number)
            for spec in shifted:
                assert not set(spec.source.values()) & set(spec.target.values()), (machine, number, spec.key)
                in_section = [s for s in specs if s.machine == machine and s.section == f"{number:02d}"]
                target_values = {getattr(s.condition, spec.parameter) for s in in_section if s.domain == "target"}
                if spec.parameter == "snr_db":  # jittered by +-2 dB around the attribute's value
                    assert all(min(abs(v - t) for t in spec.target.values()) <= 2 for v in target_values)
                else:
                    assert target_values <= set(spec.target.values()), (machine, number, spec.key)


def test_rendering_is_deterministic_for_a_seed_and_varies_across_seeds():
    a, b = plan(["valve"], Scale(1, 0, 0), seed=1)[0], plan(["valve"], Scale(1, 0, 0), seed=1)[0]
    np.testing.assert_array_equal(render_clip(a), render_clip(b))
    c = plan(["valve"], Scale(1, 0, 0), seed=2)[0]
    assert not np.allclose(render_clip(a), render_clip(c))
    clip = render_clip(a)
    assert clip.dtype == np.float32 and clip.shape == (160_000,) and np.abs(clip).max() <= 1.0


def test_no_clip_of_any_type_reaches_full_scale():
    """Impacts (valve knocks, bearing and slider clicks) keep their peaks: at one level of -20
    dBFS every valve clip was clipped, cutting flat the transients its faults are made of."""
    specs = plan(MACHINE_TYPES, Scale(source_train=1, target_train=0, test_per_domain_label=1), seed=3)
    peaks = {spec.relpath: float(np.abs(render_clip(spec)).max()) for spec in specs}
    assert max(peaks.values()) < FULL_SCALE, {name: round(p, 3) for name, p in peaks.items() if p >= FULL_SCALE}
    assert min(peaks.values()) > 0.05  # and none so quiet that the 16-bit floor matters


def test_every_machine_type_has_a_recording_level():
    assert set(RECORDING_LEVEL_DB) == set(MACHINE_TYPES)


def test_written_tree_reads_back_with_the_promised_counts(tmp_path):
    scale = Scale(source_train=4, target_train=2, test_per_domain_label=2)
    written = generate(str(tmp_path), ["ToyTrain", "slider"], scale, seed=3, workers=2)
    assert len(written) == 2 * scale.clips_per_machine()
    for machine in ("ToyTrain", "slider"):
        train, test = scan_split(str(tmp_path), machine, "train"), scan_split(str(tmp_path), machine, "test")
        assert len(select(train, domain="source")) == 12 and len(select(train, domain="target")) == 6
        assert len(select(test, label="anomaly")) == 12 and len(select(test, label="normal")) == 12
    info = describe(os.path.join(str(tmp_path), written[0]))
    assert (info.sample_rate, info.channels, info.frames) == (16_000, 1, 160_000)
    assert not [n for n in os.listdir(tmp_path / "dev_data" / "slider" / "train") if n.endswith(".part")]


def test_refuses_to_overwrite_without_force(tmp_path):
    generate(str(tmp_path), ["fan"], Scale(1, 0, 0), workers=1)
    with pytest.raises(AsdError, match="--force"):
        generate(str(tmp_path), ["fan"], Scale(1, 0, 0), workers=1)
    generate(str(tmp_path), ["fan"], Scale(2, 0, 0), workers=1, force=True)
    assert len(os.listdir(tmp_path / "dev_data" / "fan" / "train")) == 6


def test_unknown_machine_is_refused():
    with pytest.raises(AsdError, match="unknown machine type 'drill'"):
        plan(["drill"])


@pytest.mark.slow  # reads the suite's rendering (conftest.synthetic_check_set): the full suite only
@pytest.mark.parametrize("machine", MACHINE_TYPES)
def test_simple_detector_lands_between_0_60_and_0_92_auc_on_the_default_scale(machine, synthetic_check_set):
    """Neither trivial nor hopeless: log-mel mean/std statistics + nearest training normal, on the
    written 16-bit clips of the default scale (its first 216 a type, :data:`conftest.CHECK_SCALE`)."""
    specs = plan([machine], CHECK_SCALE, seed=SMALL_SEED)
    waves = np.stack([load_clip(os.path.join(synthetic_check_set, s.relpath)) for s in specs])
    assert np.abs(waves).max() < FULL_SCALE  # 216 clips of the type, none clipped (a file keeps a clipped peak)
    stats = clip_statistics(waves)
    section = np.array([s.section for s in specs])
    train = np.array([s.split == "train" for s in specs])
    labels = np.array([s.label == "anomaly" for s in specs])[~train]
    scores = nearest_neighbour_scores(stats[train], section[train], stats[~train], section[~train])
    auc = roc_auc_score(labels, scores)
    print(f"{machine}: simple-detector AUC {auc:.3f}")
    assert 0.60 <= auc <= 0.92


def test_a_smaller_scale_renders_the_first_clips_of_a_larger_one(tmp_path):
    """A clip's name and sound depend on its seed and position only (what conftest.CHECK_SCALE rests on)."""
    generate(str(tmp_path / "large"), ["valve"], Scale(2, 2, 2), seed=5, workers=1)
    generate(str(tmp_path / "small"), ["valve"], Scale(1, 1, 1), seed=5, workers=1)
    small = plan(["valve"], Scale(1, 1, 1), seed=5)
    assert len(small) == 18 and {s.relpath for s in small} < {s.relpath for s in plan(["valve"], Scale(2, 2, 2), seed=5)}
    for spec in small:
        assert open(tmp_path / "small" / spec.relpath, "rb").read() == open(tmp_path / "large" / spec.relpath, "rb").read()


def test_every_machine_type_has_three_sections():
    assert set(SECTIONS) == set(MACHINE_TYPES)
    assert all(len(sections) == 3 for _, sections in SECTIONS.values())


def test_interrupted_forced_generation_keeps_the_old_machine_folder(tmp_path, monkeypatch):
    import asdkeras.data.synth as synth

    generate(str(tmp_path), ["fan"], Scale(1, 0, 0), workers=1)
    before = sorted(os.listdir(tmp_path / "dev_data" / "fan" / "train"))
    calls = {"n": 0}
    real_render = synth.render_clip

    def failing_render(spec):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_render(spec)

    monkeypatch.setattr(synth, "render_clip", failing_render)
    with pytest.raises(KeyboardInterrupt):
        generate(str(tmp_path), ["fan"], Scale(3, 0, 0), workers=1, force=True)
    assert sorted(os.listdir(tmp_path / "dev_data" / "fan" / "train")) == before
    assert sorted(os.listdir(tmp_path)) == ["dev_data"]  # no staging folder left behind
