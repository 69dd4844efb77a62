"""Which build of the order book runs: the mypyc-compiled one, or book.py as pure Python.

book.py is the only definition of the book. ``make engine`` (``compiled/build.py``) compiles it,
unchanged, with mypyc into ``_built/<key>/`` beside this file, never next to the sources (where
CPython's importer would prefer a .so over the .py it came from, stale or not). ``key`` is a
digest of the exact bytes of book.py, events.py and build.py and of the interpreter's extension
ABI tag; the shared library's own name carries it too, so a shim cannot reach another build's code.

At import, :func:`select` computes the key from the files on disk and loads the compiled book
only from the directory of that key. A build of any other source has another key, so it is never
found, let alone used: after an edit, or without a build, the package falls back to pure Python
with a ``RuntimeWarning`` that says why. ``ENGINE_PURE=1`` chooses pure Python, silently.

Only the book is compiled; events.py (NamedTuples, the constants) stays Python in both builds, so
the event and Order classes, their pickles and their reprs are the same whichever build runs.

This module does file I/O at import (it reads the three sources to hash them); the
engine modules themselves (book.py, events.py) stay free of I/O.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

ENGINE_DIR = Path(__file__).resolve().parent.parent
BUILT = Path(__file__).resolve().parent / "_built"
# The inputs of a build: a change to any of them is a different key.
SOURCES = ("book.py", "events.py", "compiled/build.py")
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so
MODULE = "matcher.engine.book"


class EngineBuildUnavailable(ImportError):
    """There is no usable compiled build for the sources on disk (the message says why)."""


def read_sources() -> dict[str, bytes]:
    return {name: (ENGINE_DIR / name).read_bytes() for name in SOURCES}


def source_key(sources: dict[str, bytes] | None = None) -> str:
    """The build key of these source bytes (default: the files on disk). Complexity: O(bytes)."""
    sources = read_sources() if sources is None else sources
    digest = hashlib.sha256(f"matcher.engine mypyc build {SUFFIX}".encode())
    for name in SOURCES:
        data = sources[name]
        digest.update(b"\0%s\0%d\0" % (name.encode(), len(data)))
        digest.update(data)
    return digest.hexdigest()[:32]


def library_name(key: str) -> str:
    """The module name of the shared library mypyc builds for ``key`` (the shim imports it)."""
    return f"matcher.engine.book_{key[:16]}__mypyc"


def _load_extension(name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def load_compiled() -> ModuleType:
    """Load the compiled book built from the sources on disk, as ``matcher.engine.book``.

    Raises :class:`EngineBuildUnavailable` if there is none. Call at most once per process,
    before anything imports book.py (the compiled module takes that name in ``sys.modules``).
    """
    key = source_key()
    build = BUILT / key
    if not build.is_dir():
        others = sorted(p.name for p in BUILT.glob("*") if not p.name.startswith("."))
        if others:
            raise EngineBuildUnavailable(
                f"the compiled engine in {BUILT} was built from other sources (key "
                f"{', '.join(others)}, now {key}): run `make engine`"
            )
        raise EngineBuildUnavailable("the compiled engine is not built: run `make engine`")
    lib = library_name(key)
    try:
        _load_extension(lib, build / (lib.rsplit(".", 1)[1] + SUFFIX))
        module = _load_extension(MODULE, build / ("book" + SUFFIX))
    except (ImportError, OSError) as exc:
        sys.modules.pop(lib, None)
        reason = f"the compiled engine in {build} fails to load: {exc}"
        raise EngineBuildUnavailable(reason) from exc
    return module


def pure_requested() -> bool:
    return os.environ.get("ENGINE_PURE", "") not in ("", "0")


def select() -> tuple[ModuleType, str]:
    """The book module matcher.engine uses, and its build: ``"compiled"`` or ``"pure"``."""
    if not pure_requested():
        try:
            return load_compiled(), "compiled"
        except EngineBuildUnavailable as exc:
            warnings.warn(
                f"matcher.engine: {exc}; using the pure-Python engine (ENGINE_PURE=1 to choose"
                " it without this warning)",
                RuntimeWarning,
                stacklevel=2,
            )
    return importlib.import_module(MODULE), "pure"


def load_pure_copy() -> ModuleType:
    """A private pure-Python copy of book.py (not in ``sys.modules``), for running both builds in
    one process: the tests and the benchmark. Its classes are distinct from the package's."""
    spec = importlib.util.spec_from_file_location(MODULE, ENGINE_DIR / "book.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
