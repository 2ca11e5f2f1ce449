"""tests/system_tools.py: a missing program skips a test on a developer's machine and fails it in CI."""

import sys
from pathlib import Path

import pytest

from tests.system_tools import REQUIRE_ENV, find_tool, require_tool

MISSING = "m2s-no-such-program-7f3a"


def test_finds_this_environments_own_scripts():
    """Programs of this Python environment are found even when its bin folder is not on PATH."""
    assert find_tool(MISSING, "python") == str(Path(sys.executable).parent / "python")


def test_missing_tool_skips_outside_ci(monkeypatch):
    """Without M2S_REQUIRE_SYSTEM_TOOLS=1 a missing program skips, quoting the install hint."""
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} is not installed \\(apt-get install it\\)"):
        require_tool(MISSING, install_hint="apt-get install it")


def test_missing_tool_fails_in_ci(monkeypatch):
    """With M2S_REQUIRE_SYSTEM_TOOLS=1 a missing program fails the test."""
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"it is required here \\({REQUIRE_ENV}=1\\)"):
        require_tool(MISSING, install_hint="apt-get install it")


def test_always_required_tool_fails_anywhere(monkeypatch):
    """A tool the dev extra installs (always=True) fails the test even outside CI."""
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(
        pytest.fail.Exception, match="is not installed \\(pip install it\\); it is required here$"
    ):
        require_tool(MISSING, install_hint="pip install it", always=True)


def test_needs_a_program_name():
    """Calling it with no name is a programming error."""
    with pytest.raises(ValueError, match="at least one program name"):
        require_tool(install_hint="-")
