"""A plain folder: ``normal/``, optional ``abnormal/``, unlabelled clips directly in it; one section, split derived."""

from asdkeras.data.layouts import DerivedSplitLayout
from asdkeras.data.records import audio_names


class Plain(DerivedSplitLayout):
    name = "plain"
    description = "plain folder (normal/, abnormal/, or unlabelled clips; split derived)"
    keeps_unlabelled = True

    def matches(self, folder, entries):
        return bool(entries & {"normal", "abnormal"}) or bool(audio_names(folder))

    def sections(self, base):
        return [("00", base)]


LAYOUT = Plain()
