"""A Triton-like model repository: ``<root>/<name>/<version>/`` bundle folders with integer versions.

No torch, no onnxruntime: the service lists and loads bundles with this alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .bundle import MANIFEST_NAME, BundleError, BundleManifest, load_manifest

# The repository shipped with the project and the default demo bundle in it (see training.demo_bundle).
DEFAULT_REPOSITORY = Path(__file__).resolve().parent / "repository"
DEMO_BUNDLE = "m2s-synthetic-demo"

# Versions have at most 18 digits: int() of a longer one could exceed Python's digit limit (a 500, not a 422).
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?::(?P<version>[1-9][0-9]{0,17}|latest))?$")


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """Split ``"name"``, ``"name:latest"`` or ``"name:3"`` into (name, version or None for latest)."""
    match = _REF.match(ref) if isinstance(ref, str) else None
    if match is None:
        raise BundleError(
            f"invalid model reference {ref!r}; use 'name' or 'name:<version>' (a positive integer of at most 18 "
            "digits, or 'latest'), "
            "e.g. 'm2s-synthetic:1'."
        )
    version = match.group("version")
    return match.group("name"), None if version in (None, "latest") else int(version)


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its folder and its verified manifest."""

    path: Path
    manifest: BundleManifest

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.manifest.name}:{self.manifest.version}"

    def graph_path(self, modality: str, *, embedding: bool = False) -> Path:
        """Path of a modality's inference (or embedding) ONNX graph."""
        graph = self.manifest.graph(modality)
        return self.path / (graph.embedding_file if embedding else graph.model_file)


class ModelRepository:
    """Bundles under ``root/<name>/<version>/``, versions being positive integers.

    Parameters
    ----------
    root : path-like
        Repository folder (created by :meth:`new_version_dir` if needed).
    *more_roots : path-like
        Further repository folders searched after ``root`` (e.g. the service's writable folder of
        calibrated bundles beside its read-only repository). A name lives in the first root that
        has a version of it; :meth:`new_version_dir` writes into ``root`` only.
    """

    def __init__(self, root: Path | str, *more_roots: Path | str):
        self.root = Path(root)
        self.roots: tuple[Path, ...] = (self.root, *(Path(r) for r in more_roots))

    def names(self) -> list[str]:
        """Model names that have at least one version (in any root), sorted."""
        folders = {p.name for root in self.roots if root.is_dir() for p in root.iterdir() if p.is_dir()}
        return sorted(n for n in folders if self.versions(n))

    def _home(self, name: str) -> Path:
        """The root that holds ``name`` (the first with a version of it; ``root`` when none has)."""
        for root in self.roots:
            if _versions_in(root / name):
                return root
        return self.root

    def versions(self, name: str) -> list[int]:
        """Versions of ``name`` that hold a manifest, ascending (from the root that holds ``name``)."""
        return _versions_in(self._home(name) / name)

    def path(self, name: str, version: int) -> Path:
        """Folder of ``name`` version ``version`` (whether or not it exists)."""
        return self._home(name) / name / str(version)

    def resolve(self, ref: str) -> Path:
        """Folder of ``name[:version]`` (latest when no version); BundleError listing what exists otherwise."""
        name, version = parse_model_ref(ref)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            where = " + ".join(repr(str(r)) for r in self.roots)
            raise BundleError(f"no model named {name!r} in repository {where}; models there: {known}.")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise BundleError(f"model {name!r} has no version {version}; versions: {versions}.")
        return self.path(name, version)

    def load(self, ref: str, *, verify: bool = True) -> Bundle:
        """Load and verify (schema, checksums) the bundle ``name[:version]``."""
        path = self.resolve(ref)
        manifest = load_manifest(path, verify=verify)
        name, _ = parse_model_ref(ref)
        if manifest.name != name or str(manifest.version) != path.name:
            raise BundleError(
                f"{str(path)!r} holds bundle {manifest.name}:{manifest.version}, which does not match its "
                "folder <name>/<version>; move it or fix the manifest."
            )
        return Bundle(path=path, manifest=manifest)

    def list(self) -> list[Bundle]:
        """Every bundle (all names, all versions), manifests validated but checksums not re-read."""
        return [
            Bundle(path=self.path(n, v), manifest=load_manifest(self.path(n, v), verify=False))
            for n in self.names()
            for v in self.versions(n)
        ]

    def new_version_dir(self, name: str) -> tuple[int, Path]:
        """Create the folder of the next version of ``name`` in ``root`` and return (version, path)."""
        parse_model_ref(name)
        versions = _versions_in(self.root / name)
        version = (versions[-1] + 1) if versions else 1
        path = self.root / name / str(version)
        path.mkdir(parents=True, exist_ok=False)
        return version, path


def _versions_in(folder: Path) -> list[int]:
    """Versions (positive integer sub-folders holding a manifest) of one model folder, ascending."""
    if not folder.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in folder.iterdir()
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / MANIFEST_NAME).is_file()
    )
