"""Griffe extension (mkdocs.yml, mkdocstrings' ``extensions``): Sphinx roles in the numpydoc docstrings
become links of the API reference.

The docstrings are reStructuredText (numpydoc), which mkdocstrings renders as Markdown: ``code`` reads the
same in both, but a role such as ``:class:`~signals.pipeline.FeaturePipeline``` would show its markup.
Each role becomes the code of its target (``~`` keeps the last name, as in Sphinx), linked when the target
is documented on the site: an *optional* autorefs reference, so that a target outside the reference (the
service, numpy) is plain code instead of a broken link. Relative targets are looked up from the object's
class and module, as Sphinx does.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const):`([^`]+)`")


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is None or ":" not in obj.docstring.value:
            return
        obj.docstring.value = _ROLE.sub(lambda m: self._reference(m[1], obj, loader), obj.docstring.value)

    @staticmethod
    def _reference(target: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
        short = target.startswith("~")
        path = target.lstrip("~.")
        title = path.rsplit(".", 1)[-1] if short else path
        scopes = [obj.path]
        parent = obj.parent
        while parent is not None:
            scopes.append(parent.path)
            parent = parent.parent
        for candidate in [path, *(f"{scope}.{path}" for scope in scopes)]:
            try:
                found = loader.modules_collection.get_member(candidate)
            except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError):
                continue
            try:
                identifier = found.final_target.path if found.is_alias else found.path
            except griffe.AliasResolutionError:
                identifier = found.path
            return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(title)}</code></autoref>'
        return f"``{title}``"
