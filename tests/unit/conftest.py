"""The engine tests (test_engine*.py) run once per build of the book: ``[compiled]`` and ``[pure]``.

The tests name ``OrderBook`` through their module's globals (and the doctest through
``matcher.engine``); a module-scoped fixture rebinds both to the build under test and puts them
back after, so each test module runs whole against one build, then whole against the other.
With ``ENGINE_PURE=1`` only ``[pure]`` runs. Without a compiled build for the current sources the
``[compiled]`` tests fail and say so (``make engine`` builds it): a silent skip would let CI test
pure Python twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import matcher.engine
from matcher.engine import compiled


def _builds() -> dict[str, Any]:
    """Build name -> OrderBook class, or the reason the compiled build is missing."""
    if compiled.pure_requested():
        return {"pure": matcher.engine.OrderBook}
    if matcher.engine.BUILD == "compiled":
        return {
            "compiled": matcher.engine.OrderBook,
            "pure": compiled.load_pure_copy().OrderBook,
        }
    try:
        compiled.load_compiled()
    except compiled.EngineBuildUnavailable as exc:
        reason = str(exc)
    else:  # pragma: no cover - it would have been selected at import
        reason = "the compiled engine loaded only on a second attempt"
    return {"compiled": reason, "pure": matcher.engine.OrderBook}


BUILDS = _builds()


def _is_engine_test(module: Any) -> bool:
    """A test_engine*.py module that builds books (test_engine_build.py does not)."""
    name = "" if module is None else module.__name__.rsplit(".", 1)[-1]
    return name.startswith("test_engine") and hasattr(module, "OrderBook")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if _is_engine_test(metafunc.module) and "engine_build" in metafunc.fixturenames:
        metafunc.parametrize("engine_build", list(BUILDS), indirect=True, scope="module")


def pytest_report_header() -> str:
    return f"matcher.engine: {matcher.engine.BUILD}; engine tests run against: {', '.join(BUILDS)}"


@pytest.fixture(scope="module", autouse=True)
def engine_build(request: pytest.FixtureRequest) -> Iterator[str | None]:
    name = getattr(request, "param", None)
    if name is None:  # not an engine test module
        yield None
        return
    book_class = BUILDS[name]
    if isinstance(book_class, str):
        pytest.fail(f"no compiled engine to test: {book_class} (or ENGINE_PURE=1)")
    saved = request.module.OrderBook, matcher.engine.OrderBook
    request.module.OrderBook = matcher.engine.OrderBook = book_class
    try:
        yield name
    finally:
        request.module.OrderBook, matcher.engine.OrderBook = saved
