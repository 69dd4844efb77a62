"""The choice between the compiled and the pure-Python book: a stale build is never used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import matcher.engine
from matcher.engine import compiled


def test_the_build_key_covers_every_byte_of_the_sources() -> None:
    sources = compiled.read_sources()
    assert compiled.source_key(sources) == compiled.source_key()
    for name in compiled.SOURCES:
        edited = dict(sources, **{name: sources[name] + b" "})
        assert compiled.source_key(edited) != compiled.source_key(sources), name


def import_engine(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = "import matcher.engine as e; print(e.BUILD, e.OrderBook.__module__)"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**{k: v for k, v in os.environ.items() if k != "ENGINE_PURE"}, **env},
        capture_output=True,
        text=True,
        check=True,
    )


@pytest.mark.skipif(matcher.engine.BUILD != "compiled", reason="needs the compiled build")
def test_an_edited_source_falls_back_to_pure_python_with_a_warning(tmp_path: Path) -> None:
    # A copy of the package with its build, then one edit: the build no longer matches.
    shutil.copytree(Path(matcher.engine.__file__).parent.parent, tmp_path / "matcher")
    assert import_engine(tmp_path).stdout.split()[0] == "compiled"
    with open(tmp_path / "matcher" / "engine" / "book.py", "a") as f:
        f.write("# an edit\n")
    stale = import_engine(tmp_path)
    assert stale.stdout.split()[0] == "pure"
    assert "RuntimeWarning" in stale.stderr and "other sources" in stale.stderr
    forced = import_engine(tmp_path, ENGINE_PURE="1")
    assert forced.stdout.split()[0] == "pure" and forced.stderr == ""
