"""MIMII and MIMII DUE: ``id_XX/normal/`` and ``id_XX/abnormal/`` per machine ID (the section); split derived."""

import os
import re

from asdkeras.data.layouts import DerivedSplitLayout

_ID = re.compile(r"id_\d+")


class Mimii(DerivedSplitLayout):
    name = "mimii"
    description = "MIMII / MIMII DUE (id_XX/normal/, id_XX/abnormal/; split derived)"

    def matches(self, folder, entries):
        return any(_ID.fullmatch(e) and os.path.isdir(os.path.join(folder, e)) for e in entries)

    def sections(self, base):
        return [(f"{int(d[3:]):02d}", os.path.join(base, d)) for d in sorted(os.listdir(base)) if _ID.fullmatch(d)]


LAYOUT = Mimii()
