"""Detectors on real recordings: MIMII fan id_00 (0 dB SNR, 8 channels averaged to mono).

    .venv/bin/python benchmarks/real_mimii.py --mimii ../shared/realaudio/mimii-0dB/fan/id_00

Deliberately tiny, and said so: the first 10 normal clips (sorted by name) fit each detector,
the other 10 normals and all 20 abnormal clips test it. The default ensemble is built from the AE
and the default GMM (MobileNetV2 needs another machine type for outlier exposure, which this sample
lacks); with 10 training clips and none held out, its battery scores clips the AE trained on. One section, one domain, so the figures
are the plain AUC and pAUC (FPR <= 0.1) over those 30 clips, not the DCASE official score. The
clips are linked into a temporary DCASE-named tree so the package's own fit and scoring run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from asdkeras.detector import Detector  # noqa: E402
from asdkeras.ensemble import fit_ensemble  # noqa: E402
from asdkeras.fit import fit_detector, make_config  # noqa: E402
from asdkeras.names import CACHE_DIR, DEV_DATA  # noqa: E402

VARIANTS = {
    "ae (clear, 30 epochs)": ("ae", dict(loss="mse", outlier="none", epochs=30, validation_fraction=0.0)),
    "ae (clear, 30 epochs, --error-pooling mean)": ("ae", dict(loss="mse", outlier="none", epochs=30,
                                                               validation_fraction=0.0, error_pooling="mean")),
    "gmm battery (default)": ("gmm", dict(components=1, validation_fraction=0.0)),
    "gmm fuse (r = 1 and 0.5)": ("gmm", dict(pooling_decay="fuse", components=1, validation_fraction=0.0)),
    "gmm r = 1 (mean)": ("gmm", dict(pooling_decay=1.0, components=1, validation_fraction=0.0)),
    "gmm r = 0.9": ("gmm", dict(pooling_decay=0.9, components=1, validation_fraction=0.0)),
    "gmm r = 0.5": ("gmm", dict(pooling_decay=0.5, components=1, validation_fraction=0.0)),
    "gmm r = 0 (max)": ("gmm", dict(pooling_decay=0.0, components=1, validation_fraction=0.0)),
}


def dcase_tree(mimii: str, root: str, machine: str = "fan", fit_count: int = 10) -> list[tuple[str, int]]:
    """Link MIMII clips into ``root/dev_data/<machine>/{train,test}``; return (test path, label)."""
    normal = sorted(os.listdir(os.path.join(mimii, "normal")))
    abnormal = sorted(os.listdir(os.path.join(mimii, "abnormal")))
    train = os.path.join(root, DEV_DATA, machine, "train")
    test = os.path.join(root, DEV_DATA, machine, "test")
    os.makedirs(train)
    os.makedirs(test)
    for i, name in enumerate(normal[:fit_count]):
        os.symlink(os.path.abspath(os.path.join(mimii, "normal", name)),
                   os.path.join(train, f"section_00_source_train_normal_{i:04d}_id_00.wav"))
    tests = []
    for label, names in ((0, normal[fit_count:]), (1, abnormal)):
        for i, name in enumerate(names):
            kind = "anomaly" if label else "normal"
            path = os.path.join(test, f"section_00_source_test_{kind}_{i:04d}_id_00.wav")
            os.symlink(os.path.abspath(os.path.join(mimii, "abnormal" if label else "normal", name)), path)
            tests.append((path, label))
    return tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mimii", default="../shared/realaudio/mimii-0dB/fan/id_00")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as root:
        tests = dcase_tree(args.mimii, root)
        paths, labels = [p for p, _ in tests], np.array([y for _, y in tests])
        def report(name: str, folder: str, **extra) -> None:
            scores = Detector.load(folder).score_files(paths, os.path.join(root, CACHE_DIR))
            results[name] = {"auc": float(roc_auc_score(labels, scores)),
                             "pauc": float(roc_auc_score(labels, scores, max_fpr=0.1)), **extra}
            print(f"{name:28s} AUC {results[name]['auc']:.3f} pAUC {results[name]['pauc']:.3f}", flush=True)

        for name, (kind, options) in VARIANTS.items():
            config = make_config(kind, machine="fan", data_dir=root, cache_dir=os.path.join(root, CACHE_DIR),
                                 models_dir=os.path.join(root, "models"), output_dir=os.path.join(root, "models", name),
                                 **options)
            detector = fit_detector(kind, config)
            report(name, config.folder(), battery=detector.info.get("battery", {}).get("chosen"))
        # the default ensemble of the two members that need no other machine type (MobileNetV2 needs one)
        folders = {"ae": os.path.join(root, "models", "ae (clear, 30 epochs)"),
                   "gmm": os.path.join(root, "models", "gmm battery (default)")}
        ensemble = fit_ensemble("fan", os.path.join(root, "models"), kinds=tuple(folders), data_dir=root,
                                cache_dir=os.path.join(root, CACHE_DIR), folders=folders,
                                output_dir=os.path.join(root, "models", "ensemble"))
        document = ensemble.info["ensemble"]
        report("ensemble battery (ae + gmm)", os.path.join(root, "models", "ensemble"), members=document["members"],
               combine=document["combine"], reason=document["reason"])
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
