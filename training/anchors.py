"""Classical anchors: what a linear model gets on the same features, beside every deep method.

Two methods, both on the window mean of the normalised features (:func:`training.heads.window_means`)
and both with the logistic-regression head of :mod:`training.heads`:

- ``lr``: logistic regression on the training modality's features (in-modal only: A→A);
- ``cca_lr``: canonical correlation analysis fitted on paired (A, B) windows of the training data
  (no labels), logistic regression on A's canonical projection, applied to B's projection: the
  classical version of M2S's shared space, cross-modal (A→A uses the same projection of A).

Fixed settings (documented so results can be compared): each modality is first reduced by PCA to
``min(PCA_COMPONENTS, D, N // 5)`` components (CCA on more dimensions than a few hundred correlated
windows can support finds perfectly correlated noise: on 132 windows of 310-d EEG, plain CCA-LR sat
at chance), then CCA keeps ``min(CCA_COMPONENTS, ...)`` components, scikit-learn's NIPALS with
standardised inputs;
the head's ``C`` is chosen by the caller's protocol (validation trials, leave-one-trial-out, or a
setting fixed on other subjects).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Largest number of canonical components CCA-LR keeps.
CCA_COMPONENTS = 16
#: Largest number of principal components per modality CCA reads (and at most one per 5 windows).
PCA_COMPONENTS = 32


@dataclass
class CcaProjection:
    """CCA between two modalities' window features; projects either one into the shared space.

    Attributes
    ----------
    a, b : str
        The two modalities (scikit-learn's X and Y).
    n_components : int
    """

    a: str
    b: str
    n_components: int
    _model: object = None
    _pca: dict = None

    @classmethod
    def fit(
        cls, a: str, b: str, za: np.ndarray, zb: np.ndarray, *, n_components: int = CCA_COMPONENTS
    ) -> CcaProjection:
        """Fit on paired features ``za`` (N, D_A) and ``zb`` (N, D_B) (window means of the same windows)."""
        from sklearn.cross_decomposition import CCA

        za, zb = np.asarray(za, np.float64), np.asarray(zb, np.float64)
        if za.ndim != 2 or zb.ndim != 2 or za.shape[0] != zb.shape[0]:
            raise ValueError(f"CCA needs paired (N, D) features, got {za.shape} and {zb.shape}.")
        if za.shape[0] < 3:
            raise ValueError(f"CCA needs at least 3 paired windows, got {za.shape[0]}.")
        from sklearn.decomposition import PCA

        n_pca = max(1, min(PCA_COMPONENTS, za.shape[0] // 5))
        pca = {}
        for name, z in ((a, za), (b, zb)):
            pca[name] = PCA(n_components=min(n_pca, z.shape[1]), svd_solver="full").fit(z)
        pa, pb = pca[a].transform(za), pca[b].transform(zb)
        k = int(min(n_components, pa.shape[1], pb.shape[1], za.shape[0] - 1))
        model = CCA(n_components=k, scale=True, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NIPALS may stop at max_iter on a near-degenerate component
            model.fit(pa, pb)
        return cls(a=a, b=b, n_components=k, _model=model, _pca=pca)

    def transform(self, modality: str, z: np.ndarray) -> np.ndarray:
        """Canonical projection of one modality's features, shape (N, n_components)."""
        model = self._model
        if modality not in (self.a, self.b):
            raise ValueError(f"this CCA pairs {self.a!r} and {self.b!r}, not {modality!r}.")
        z = self._pca[modality].transform(np.asarray(z, np.float64))
        if modality == self.a:
            return (z - model._x_mean) / model._x_std @ model.x_rotations_
        if modality == self.b:
            return (z - model._y_mean) / model._y_std @ model.y_rotations_
        raise ValueError(f"this CCA pairs {self.a!r} and {self.b!r}, not {modality!r}.")


def cca_partner(a: str, b: str, modalities: list[str] | tuple[str, ...]) -> str:
    """The modality CCA pairs A with for the pair A→B: B itself, or for A→A the next modality in order."""
    if a != b:
        return b
    others = [m for m in modalities if m != a]
    if not others:
        raise ValueError(f"CCA needs a second modality besides {a!r}.")
    i = list(modalities).index(a)
    return next((m for m in list(modalities)[i + 1 :] + list(modalities)[:i] if m != a), others[0])
