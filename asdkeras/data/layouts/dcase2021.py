"""DCASE 2021: ``train/``, and the test clips in ``source_test/`` and ``target_test/``."""

import os

from asdkeras.data.layouts import Layout


class Dcase2021(Layout):
    name = "dcase2021"
    description = "DCASE 2021 (train/, source_test/, target_test/)"

    def matches(self, folder, entries):
        return bool(entries & {"source_test", "target_test"})

    def split_folders(self, base, split):
        if split == "test":
            return [os.path.join(base, f) for f in ("source_test", "target_test", "test")]
        return [os.path.join(base, split)]


LAYOUT = Dcase2021()
