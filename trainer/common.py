"""What the trainer scripts share: the bad-input error they exit 2 on, and writing JSON files atomically."""

from __future__ import annotations

import json
import os


class InputError(Exception):
    """Bad input (missing file, wrong layout, inconsistent rows): the scripts print it and exit with status 2."""


def write_json_atomic(path: str, value: object, allow_nan: bool = True) -> None:
    """Writes `value` to a temporary file beside `path`, flushes it to disk, then renames it into place."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, allow_nan=allow_nan)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
