"""Live calibration of a new participant (``docs/design/CALIBRATION.md`` §3), in three parts:

- :mod:`.session`: one calibration: trials from markers or REST, the windows inside them, the
  participant's feature statistics;
- :mod:`.fit`: the head (logistic regression on shared embeddings) and its leave-one-trial-out
  validation, a pure function;
- :mod:`.manager`: the service's calibrations: create, fit, save as a calibrated bundle, hot swap.

No torch.
"""

from service.calibration.manager import (
    CalibrationConflict,
    CalibrationFailed,
    CalibrationManager,
    CalibrationNotFound,
)
from service.calibration.session import Calibration

__all__ = [
    "Calibration",
    "CalibrationConflict",
    "CalibrationFailed",
    "CalibrationManager",
    "CalibrationNotFound",
]
