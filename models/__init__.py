"""The M2S network and the bundle/manifest format with the model repository.

``import models`` and ``import models.config`` never import torch (the service reads configs and
bundles without it); the torch classes below are loaded on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "M2SConfig": "models.config",
    "ModalityConfig": "models.config",
    "M2S": "models.m2s",
    "PretrainOutput": "models.m2s",
    "EmotionClassifier": "models.m2s",
    "SupervisedModel": "models.m2s",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
