"""Importing the Lambda's app (a cold start) does no costly work: no password hash, among others.
The dummy hash that evens out login timing is made on first use, once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import argon2

calls = []
real_hash = argon2.PasswordHasher.hash

def counting_hash(self, *args, **kwargs):
    calls.append(1)
    return real_hash(self, *args, **kwargs)

argon2.PasswordHasher.hash = counting_hash

import app  # noqa: F401
from chalicelib.identity import passwords

print(len(calls))
assert passwords.verify(None, "not the password") is False
assert passwords.verify(None, "not the password either") is False
print(len(calls))
"""


def test_importing_the_app_hashes_nothing_and_the_dummy_hash_is_made_once() -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    at_import, after_logins = done.stdout.split()
    assert (at_import, after_logins) == ("0", "1")
