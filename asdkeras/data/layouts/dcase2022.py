"""DCASE 2022-2024: ``train/`` and ``test/`` of ``section_XX_{source|target}_{train|test}_...`` names."""

from asdkeras.data.layouts import Layout


class Dcase2022(Layout):
    name = "dcase2022"
    description = "DCASE 2022-2024 (train/, test/, section_XX_... names)"

    def matches(self, folder, entries):
        return bool(entries & {"train", "test"})


LAYOUT = Dcase2022()
