"""Run the real `kandanim` command in a child process, offline, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def kandanim(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "kandanim", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
