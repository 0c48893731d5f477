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


def test_run_starts_the_demo_feeds_asked_for(tmp_path):
    """`shaftwatch run --demo-feeds cameras,fences`: those feeds, each on its own ops port
    whichever others run; an unknown feed name is refused before anything starts."""
    from streams.config import load_config
    from streams.ops.cli import build_parser
    from streams.ops.supervisor import plan_children

    args = build_parser().parse_args(["run", "--demo-feeds", "cameras,fences"])
    cfg = load_config(REPO / "configs")
    children = {c.name: c for c in plan_children(cfg, None, 60.0, args.demo_feeds)}
    assert sorted(children) == ["demo-cameras", "demo-fences", "server", "worker-0"]
    base = cfg.runtime.http.feeder_ops_port
    assert children["demo-fences"].args[-1] == str(base + 1) and children["demo-cameras"].args[-1] == str(base + 2)
    assert build_parser().parse_args(["run"]).demo_feeds is None  # all of them (cmd_run)
    refused = subprocess.run([sys.executable, "-m", "streams.ops.cli", "run", "--demo-feeds", "cameras,radar"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and "give one or more of meters, fences, cameras" in refused.stderr
