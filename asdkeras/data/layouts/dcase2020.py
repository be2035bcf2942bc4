"""DCASE 2020: ``train/`` and ``test/`` of ``{normal|anomaly}_id_XX_NNNNNNNN`` names (ID = section, one domain)."""

import os

from asdkeras.data.layouts import Layout
from asdkeras.data.records import DCASE2020_NAME, audio_names


class Dcase2020(Layout):
    name = "dcase2020"
    description = "DCASE 2020 (train/, test/, {normal|anomaly}_id_XX_... names; ID = section, one domain)"

    def matches(self, folder, entries):
        if not entries & {"train", "test"}:
            return False
        names = audio_names(os.path.join(folder, "train")) + audio_names(os.path.join(folder, "test"))
        return bool(names) and bool(DCASE2020_NAME.match(os.path.splitext(names[0])[0]))


LAYOUT = Dcase2020()
