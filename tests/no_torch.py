"""Run test code in a fresh Python process where some packages cannot be imported (torch by default).

A meta-path finder refuses the imports; ``sys.modules['torch'] = None`` is not used because scipy's
array-API helpers then crash on the None entry.
"""

import subprocess
import sys

_PRELUDE = """\
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError('blocked ' + name)
sys.meta_path.insert(0, _Block())
"""


def run_without(
    code: str, *, blocked: tuple[str, ...] = ("torch",), timeout: float = 300, env=None, cwd=None
) -> subprocess.CompletedProcess:
    """Run ``code`` (source text) with ``blocked`` top-level packages refused; returns the finished process."""
    source = _PRELUDE.format(blocked=tuple(blocked)) + code
    return subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        cwd=cwd,
    )
