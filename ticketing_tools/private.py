"""Files only this user may read: keys, passwords, configurations that hold
them, and everything else a local stack writes."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: str | bytes) -> Path:
    """Writes ``data`` to ``path``, created (or truncated) with mode 0600, so
    it is never readable by others, not even for a moment; an existing file
    loses any other bits."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return path
