"""Find the programs some tests drive (Chromium, docker-compose, hadolint) or skip — or fail in CI.

A developer without, say, Debian's ``docker-compose`` gets a skip that says how to install it; CI
(``.ci/run`` sets ``M2S_REQUIRE_SYSTEM_TOOLS=1``) installs every one of them, so there a missing tool
is a failure, never a silently skipped check.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

REQUIRE_ENV = "M2S_REQUIRE_SYSTEM_TOOLS"

# The environment's own scripts (ruff, hadolint from the dev extra) even when it is not on PATH.
_ENV_BIN = Path(sys.executable).parent


def find_tool(*names: str) -> str | None:
    """Path of the first of ``names`` found in this Python environment's bin folder or on PATH."""
    for name in names:
        local = _ENV_BIN / name
        if local.is_file() and os.access(local, os.X_OK):
            return str(local)
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def require_tool(*names: str, install_hint: str, always: bool = False) -> str:
    """Path of the first of ``names`` that is installed; otherwise skip the test, or fail it.

    Parameters
    ----------
    *names : str
        Program names to look for, in order of preference (e.g. ``"chromium", "chromium-browser"``).
    install_hint : str
        How to install it, quoted in the skip or failure message.
    always : bool
        Fail instead of skipping even outside CI: for tools the dev extra installs.

    Returns
    -------
    str
        Path of the program.
    """
    if not names:
        raise ValueError("require_tool needs at least one program name.")
    path = find_tool(*names)
    if path is not None:
        return path
    message = f"{' / '.join(names)} is not installed ({install_hint})"
    if always or os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message}; it is required here" + ("" if always else f" ({REQUIRE_ENV}=1)"))
    pytest.skip(message)
