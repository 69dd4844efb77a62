"""Compile book.py with mypyc into ``_built/<key>/`` (see the package docstring); ``make engine``.

    ENGINE_PURE=1 python -m matcher.engine.compiled.build [--force]

Idempotent: if the build for the current sources and the installed mypy exists it prints so and
exits (well under a second). Otherwise it compiles a copy of exactly the bytes it hashed (so a
file edited during the build cannot be paired with the wrong key), moves the result into place
with one rename, removes every other build, and checks in a fresh interpreter that
``matcher.engine`` now loads it. Needs a C compiler and the Python headers; about 10 s.
(ENGINE_PURE=1 only keeps importing this package from warning that the build is missing.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import chdir
from pathlib import Path

from matcher.engine.compiled import BUILT, SUFFIX, library_name, read_sources, source_key

MANIFEST = "build.json"
OPT_LEVEL = "3"


def up_to_date(build: Path, mypy_version: str) -> bool:
    try:
        manifest = json.loads((build / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return bool(manifest.get("mypy") == mypy_version)


def compile_book(sources: dict[str, bytes], key: str, work: Path) -> Path:
    """Compile the staged copy of the sources under ``work``; return the directory of the .so."""
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]  # no stubs; one call

    # mypyc names modules from the package layout, so the copy keeps matcher/engine/.
    stage = work / "src"
    package = stage / "matcher" / "engine"
    package.mkdir(parents=True)
    (stage / "matcher" / "__init__.py").write_bytes(b"")
    (package / "__init__.py").write_bytes(b"")
    for name in ("book.py", "events.py"):
        (package / name).write_bytes(sources[name])
    out = work / "out"
    with chdir(stage):
        extensions = mypycify(
            ["matcher/engine/book.py"],
            opt_level=OPT_LEVEL,
            target_dir=str(work / "c"),
            group_name=library_name(key).removesuffix("__mypyc"),
        )
        setup(
            name="matcher-engine-compiled",
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(out),
                "--build-temp",
                str(work / "obj"),
            ],
        )
    return out / "matcher" / "engine"


def verify() -> None:
    """Import matcher.engine in a fresh interpreter, as the service will, and insist on the
    compiled build (a fallback warning is an error there)."""
    code = "import matcher.engine as e; assert e.BUILD == 'compiled', e.BUILD"
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_PURE"}
    root = str(Path(__file__).resolve().parents[3])
    subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", code], check=True, env=env, cwd=root
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    from mypy.version import __version__ as mypy_version

    sources = read_sources()
    key = source_key(sources)
    build = BUILT / key
    if not args.force and up_to_date(build, mypy_version):
        print(f"engine: compiled build {key} is up to date")
        return 0
    t0 = time.perf_counter()
    BUILT.mkdir(exist_ok=True)
    # Built under BUILT (same file system, so the final rename is atomic), never under a key:
    # the loader ignores dot-directories.
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=BUILT))
    try:
        try:
            result = compile_book(sources, key, work)
        except (Exception, SystemExit) as exc:  # setuptools exits on a compiler error
            print(
                f"engine: the mypyc build failed ({type(exc).__name__}: {exc}). It needs gcc and"
                " the Python headers (Debian: apt install gcc python3-dev); without them, set"
                " ENGINE_PURE=1 to run and test the pure-Python engine only.",
                file=sys.stderr,
            )
            return 1
        final = work / "final"
        final.mkdir()
        lib = library_name(key).rsplit(".", 1)[1]
        for name in ("book" + SUFFIX, lib + SUFFIX):
            shutil.copy2(result / name, final / name)
        manifest = {
            "key": key,
            "mypy": mypy_version,
            "python": sys.version.split()[0],
            "opt_level": OPT_LEVEL,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        (final / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if build.exists():
            shutil.rmtree(build)
        final.rename(build)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for other in BUILT.iterdir():
        if other != build and other.is_dir() and not other.name.startswith(".work-"):
            shutil.rmtree(other, ignore_errors=True)
    verify()
    print(f"engine: compiled build {key} in {time.perf_counter() - t0:.1f} s ({build})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
