from __future__ import annotations

import os
import stat

from streams.edge.pseudonyms import load_key, pseudonymize


def test_pseudonyms_are_stable_keyed_and_not_clear():
    a = pseudonymize(b"key-one", "460001234567890")
    assert a == pseudonymize(b"key-one", " 4600-0123-4567890 ")  # formatting does not matter
    assert pseudonymize(b"k", "+86 139-1234-5678") == pseudonymize(b"k", "8613912345678")
    assert a != pseudonymize(b"key-two", "460001234567890")
    assert a.startswith("p1:") and "460001234567890" not in a and len(a) == 35


def test_key_from_environment_or_private_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SW_TEST_KEY", "from-env")
    assert load_key("SW_TEST_KEY") == b"from-env"
    monkeypatch.delenv("SW_TEST_KEY")
    monkeypatch.setenv("SHAFTWATCH_PSEUDONYM_KEY_FILE", str(tmp_path / "k" / "pseudonym.key"))
    first = load_key("SW_TEST_KEY")
    assert first == load_key("SW_TEST_KEY") and len(first) == 64
    mode = stat.S_IMODE(os.stat(tmp_path / "k" / "pseudonym.key").st_mode)
    assert mode == 0o600


def test_watchlist_hash_command(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO
    env = {"SHAFTWATCH_PSEUDONYM_KEY": "police-and-county", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "streams.ops.cli", "watchlist", "hash"], input="+86 139 1234 5678\n\n# x\n",
                         capture_output=True, text=True, env=env, cwd=REPO, check=True).stdout.split()
    assert out == [pseudonymize(b"police-and-county", "8613912345678")]
