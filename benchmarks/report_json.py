"""Print a benchmark's result as JSON and, when asked, write the same to a file."""

from __future__ import annotations

import json
import os


def emit(result: dict, out_path: str | None) -> None:
    print(json.dumps(result, indent=2))
    if out_path:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w") as handle:
            json.dump(result, handle, indent=2)
