"""References inside a batch or transaction Bundle (FHIR R4 http.html §3.1.0.13.3).

``urn:uuid:``/``urn:oid:`` fullUrls and conditional references (``Patient?identifier=…``)
are rewritten to the ids the server gives; narratives follow. Used by
:mod:`rempart.rest.bundle` after :func:`rempart.fhir.bundle.parse_bundle`.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator, Mapping
from typing import Any, cast

from rempart.errors import Category, RempartError

_PLACEHOLDER_PREFIXES = ("urn:uuid:", "urn:oid:")
_CONDITIONAL_REFERENCE = re.compile(r"[A-Z][A-Za-z]{0,63}\?\S.*", re.DOTALL)
_MAX_DEPTH = 256


def rewrite_references(resource: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """``resource`` with its references found in ``mapping`` pointing to their values.

    Every ``reference`` string at any depth (lists, contained resources, extensions)
    equal to a key is replaced; so are the key's occurrences in narratives
    (``text.div``), as http.html §3.1.0.13.3 asks. ``resource`` is never changed: the
    paths to what changed are copied, the rest is shared with it.
    """
    return cast(dict[str, Any], _Rewriter(mapping).node(resource, 0))


class _Rewriter:
    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = mapping

    @functools.cached_property
    def in_div(self) -> dict[str, str]:
        # Narratives are XHTML: a key appears there escaped (& in a search url).
        return {html.escape(key): html.escape(value) for key, value in self.mapping.items()}

    @functools.cached_property
    def pattern(self) -> re.Pattern[str] | None:
        """Built on the first narrative only: most resources of a bundle have none."""
        keys = sorted((re.escape(key) for key in self.in_div if key), key=len, reverse=True)
        # A key must stand alone: 'Patient/1' is not rewritten inside 'Patient/12'.
        alternatives = "|".join(keys)
        pattern = rf"(?<![\w\-./:%~])(?:{alternatives})(?![\w\-/%~]|\.\w)"
        return re.compile(pattern) if keys else None

    def node(self, node: Any, depth: int) -> Any:
        """The node rewritten; the very same object when nothing in it changes (most
        of a resource), so that only the paths to a rewritten reference are copied."""
        if depth > _MAX_DEPTH:
            raise RempartError(Category.INCORRECT, "The resource is nested too deeply")
        if isinstance(node, list):
            items = [self.node(item, depth + 1) for item in node]
            return node if all(a is b for a, b in zip(items, node, strict=True)) else items
        if isinstance(node, dict):
            members = {key: self.member(key, value, depth) for key, value in node.items()}
            return node if all(members[key] is value for key, value in node.items()) else members
        return node

    def member(self, key: str, value: Any, depth: int) -> Any:
        if key == "reference" and isinstance(value, str):
            return self.mapping.get(value, value)
        copied = self.node(value, depth + 1)
        if key == "text" and isinstance(value, dict) and isinstance(value.get("div"), str):
            div = self.div(value["div"])
            if div != value["div"]:
                copied = {**copied, "div": div}
        return copied

    def div(self, div: str) -> str:
        if self.pattern is None:
            return div
        return self.pattern.sub(lambda match: self.in_div[match.group(0)], div)


def unresolved_placeholders(resource: dict[str, Any]) -> list[str]:
    """The ``urn:uuid:`` and ``urn:oid:`` references of ``resource``, each once, in order.

    After rewriting, any left point to no entry of the Bundle: the transaction fails.
    """
    found = (ref for ref in _references(resource, 0) if ref.startswith(_PLACEHOLDER_PREFIXES))
    return list(dict.fromkeys(found))


def conditional_references(resource: dict[str, Any]) -> list[str]:
    """The ``[type]?[search]`` references of ``resource``, each once, in order."""
    found = (ref for ref in _references(resource, 0) if _CONDITIONAL_REFERENCE.fullmatch(ref))
    return list(dict.fromkeys(found))


def _references(node: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        raise RempartError(Category.INCORRECT, "The resource is nested too deeply")
    if isinstance(node, list):
        for item in node:
            yield from _references(item, depth + 1)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value, depth + 1)
