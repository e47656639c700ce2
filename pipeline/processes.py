"""Whether a process of this host still exists: what is left behind by one that was killed
(a staging directory, a run lock) may be cleared only once it is gone."""

from __future__ import annotations

import os


def process_exists(pid: int) -> bool:
    """True while ``pid`` names a process of this host, a zombie or another user's included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
