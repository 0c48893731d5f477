"""`shaftwatch` commands as a user types them."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_config_check_takes_the_directory_as_an_argument(tmp_path):
    """`shaftwatch config check DIR`, as `promtool check config FILE` and `nginx -t` users expect."""
    ok = subprocess.run([sys.executable, "-m", "streams.ops.cli", "config", "check", str(REPO / "configs")],
                        capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and f"{REPO / 'configs'}: OK" in ok.stdout, ok.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in (REPO / "configs").glob("*.yaml"):
        (bad / path.name).write_text(path.read_text())
    (bad / "sites.yaml").write_text("sites: nope\n")
    refused = subprocess.run([sys.executable, "-m", "streams.ops.cli", "config", "check", str(bad)],
                             capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and "sites.yaml" in refused.stderr
