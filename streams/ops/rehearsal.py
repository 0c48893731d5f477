"""A theft rehearsal (``shaftwatch run --theft-site S01``, ``make run THEFT=S01``) runs on a
demo state of its own, so it can be staged again and again and always shows its three
sources.

Why: the demo feeders stage the theft on last night's clock (01:30 local). A second
rehearsal the same day would replay the same meter intervals and fence visits, which the
system rightly takes for re-sends, and the theft would show camera evidence only. So each
rehearsal gets, under ``<data_dir>/rehearsals/<UTC time>/``, a copy of the config
directory whose runtime points everything there: its own data directory (local broker,
alert store, evidence, worker state), consumer group and topic prefix. The newest
``KEEP`` rehearsals are kept for a look afterwards; older ones are removed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import yaml

from streams.config import ShaftWatchConfig, load_config

KEEP = 3


def prepare_rehearsal(cfg: ShaftWatchConfig) -> ShaftWatchConfig:
    """The config of a fresh rehearsal, written beside its state; this process (and the
    children it starts) use its data directory from now on."""
    stamp = time.strftime("%Y%m%dt%H%M%S", time.gmtime())
    home = cfg.data_dir / "rehearsals"
    root = home / stamp
    configs = root / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    for path in Path(cfg.config_dir).glob("*.yaml"):  # the section files and those they name (allowlist.yaml)
        shutil.copy(path, configs / path.name)
    runtime = yaml.safe_load((configs / "shaftwatch.yaml").read_text(encoding="utf-8")) or {}
    app = runtime.setdefault("app", {})
    topics = app.setdefault("topics", {})
    runtime.update(data_dir=str(root), store_url=None, evidence_dir=None)
    app["id"] = f"{cfg.runtime.app.id}-rehearsal-{stamp}"
    topics["prefix"] = f"{cfg.runtime.app.topics.prefix}rehearsal-{stamp}."
    (configs / "shaftwatch.yaml").write_text(
        f"# A theft rehearsal's runtime: copied from {cfg.config_dir}, its state kept here.\n"
        + yaml.safe_dump(runtime, allow_unicode=True, sort_keys=False), encoding="utf-8")
    # The environment must not point the rehearsal back at the county's own state.
    os.environ["SHAFTWATCH_DATA_DIR"] = str(root)
    os.environ.pop("SHAFTWATCH_STORE_URL", None)
    for old in sorted(p for p in home.iterdir() if p.is_dir())[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return load_config(configs)
