"""The documentation matches the repository: docs/api.md lists exactly the routes the app serves,
and every repository path that README.md and docs/*.md name exists.

No services: the OpenAPI document is assembled from what each route declares when the app is
imported (`chalicelib.api.openapi.document`, the body of `GET /openapi.json`).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# `GET /orders/{order_ref}` inside an inline code span, anywhere in the text.
_ROUTE = re.compile(r"`(" + "|".join(METHODS) + r") (/[^`\s?]*)")
_HEADING = re.compile(r"^(#+)\s+(.*)$")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")

# What a name that is a file of the repository ends with.
FILE_SUFFIXES = (".py", ".md", ".sql", ".toml", ".json", ".txt")
# Folders that the commands create and the repository does not hold.
GENERATED = frozenset({".venv", ".dev", "out"})


def _outside_planned(text: str) -> str:
    """The text without any section whose heading says "planned" (down to the next heading of
    the same or a higher level)."""
    kept: list[str] = []
    skipping_below: int | None = None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if skipping_below is not None and level <= skipping_below:
                skipping_below = None
            if skipping_below is None and "planned" in heading.group(2).lower():
                skipping_below = level
        if skipping_below is None:
            kept.append(line)
    return "\n".join(kept)


def documented_routes(text: str) -> set[tuple[str, str]]:
    """(METHOD, path) of every route named in backticks outside the planned sections."""
    return {(m.group(1), m.group(2)) for m in _ROUTE.finditer(_outside_planned(text))}


def served_routes() -> set[tuple[str, str]]:
    from app import app  # noqa: F401  (importing the app registers every route's entry)
    from chalicelib.api import openapi

    paths = openapi.document()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_planned_sections_are_left_out() -> None:
    text = "## Orders\n`GET /orders`\n## Planned\n### Funding\n`POST /transfers`\n## Time\n`GET /t`"
    assert documented_routes(text) == {("GET", "/orders"), ("GET", "/t")}


def test_api_doc_lists_exactly_the_served_routes() -> None:
    assert API_DOC.is_file(), "docs/api.md documents the REST API"
    documented = documented_routes(API_DOC.read_text())
    served = served_routes()
    assert documented - served == set(), "documented in docs/api.md but not served"
    assert served - documented == set(), "served but not documented in docs/api.md"


def _looks_like_repo_path(name: str) -> bool:
    """A name to check against the repository: not a URL, an API path (`/orders`), a shell
    variable or a placeholder; and either under a top-level entry of the repository, or a
    folder (`x/`), or a file by its suffix. `rate/burst` or `10/15` are not paths."""
    if not name or name.startswith(("/", "~", "$", "-")) or "://" in name:
        return False
    if any(c in name for c in "<>{}=@"):
        return False
    first = name.split("/", 1)[0]
    if first in GENERATED:
        return False
    if "/" in name and (ROOT / first).exists():
        return True
    return name.endswith("/") or name.endswith(FILE_SUFFIXES)


def _exists(path: Path) -> bool:
    inside = path.resolve().is_relative_to(ROOT)
    if any(c in path.name for c in "*?["):
        return inside and any(path.parent.glob(path.name))
    return inside and path.exists()


def missing_paths(doc: Path) -> list[str]:
    """Repository paths the document names that do not exist: names in inline code (relative to
    the repository root) and link targets (relative to the document, as Markdown resolves
    them, and inside the repository)."""
    text = _FENCE.sub("", doc.read_text())
    missing: list[str] = []
    for span in _CODE_SPAN.findall(text):
        for token in span.split():
            name = token.strip(",;:()'\"")
            if _looks_like_repo_path(name) and not _exists(ROOT / name):
                missing.append(name)
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        name = target.split("#", 1)[0]
        if name and not _exists(doc.parent / name):
            missing.append(name)
    return missing


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_path_rules() -> None:
    assert _looks_like_repo_path("matcher/engine/")
    assert _looks_like_repo_path("../shared/API.md")
    assert _looks_like_repo_path("infra/")
    assert not _looks_like_repo_path("/orders")
    assert not _looks_like_repo_path("ws://127.0.0.1:8001")
    assert not _looks_like_repo_path("rate/burst")
    assert not _looks_like_repo_path(".venv/bin/chalice")
    assert not _looks_like_repo_path("$API/orders")


def test_every_path_the_docs_name_exists() -> None:
    missing = {str(doc.relative_to(ROOT)): missing_paths(doc) for doc in _docs()}
    assert {doc: names for doc, names in missing.items() if names} == {}
    assert (ROOT / "docs" / "performance.md").is_file(), "docs/performance.md"
