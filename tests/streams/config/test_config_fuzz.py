"""Fuzzing the config files (hypothesis): whatever an ops person types into configs/, loading
either gives a config or raises ConfigError whose every problem names one of the files and
says what is wrong; nothing else is raised. Each example breaks one file of the shipped
configs: a value anywhere in it replaced (wrong types, huge numbers and strings, nesting,
empty), a key removed or added, or the text itself broken (cut short, bytes inserted, a
tab, an encoding that is not UTF-8). Bounded by FUZZ_EXAMPLES."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import ConfigError, load_config
from tests.helpers import REPO

FUZZ_EXAMPLES = 300
FILES = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
SHIPPED = {name: (REPO / "configs" / name).read_text(encoding="utf-8") for name in FILES}

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**310)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.text(min_size=3000, max_size=4000, alphabet="x") | st.sampled_from(
               ["", "-1", "0", "1e999", "S01", "M-0001", "person", "02:00", "2026-02-30", "../../etc/passwd",
                "Asia/Shanghai", "http://", "金山镇", "\x00", "\t"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def paths(node, prefix=()):
    """Every place in a parsed YAML document: key paths to mappings' values and list items."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def replaced(doc, path, value, remove: bool):
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def broken_file(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(FILES))
    text = SHIPPED[name]
    how = draw(st.sampled_from(["value", "value", "value", "remove", "add", "text"]))
    if how == "text":
        data = text.encode()
        cut = draw(st.integers(0, len(data)))
        mutation = draw(st.sampled_from(["cut", "insert", "latin-1"]))
        if mutation == "cut":
            return name, data[:cut]
        if mutation == "insert":
            return name, data[:cut] + draw(st.binary(min_size=1, max_size=20) | st.sampled_from(
                [b"\t", b": :", b"- ", b"{", b"&a *a", b"!!python/object:os.system", b"\xff\xfe"])) + data[cut:]
        return name, text.encode("utf-16")
    doc = yaml.safe_load(text)
    places = list(paths(doc))
    path = draw(st.sampled_from(places))
    if how == "add":
        container = doc
        for part in path:
            container = container[part]
        if not isinstance(container, dict):
            path, container = (), doc
        container[draw(st.text(min_size=1, max_size=12))] = draw(values)
        return name, yaml.safe_dump(doc, allow_unicode=True).encode()
    if how == "remove" and not path:
        return name, b""
    doc = replaced(doc, path, draw(values), remove=how == "remove")
    return name, yaml.safe_dump(doc, allow_unicode=True).encode()


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("fuzz") / "configs"
    shutil.copytree(REPO / "configs", target)
    return target


def test_any_broken_config_loads_or_is_refused_naming_the_file(config_dir):
    outcomes = {"loaded": 0, "refused": 0}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(broken_file())
    def one(case):
        name, data = case
        (config_dir / name).write_bytes(data)
        try:
            load_config(config_dir)
            outcomes["loaded"] += 1
        except ConfigError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert Path(problem.file).name in FILES and problem.message.strip(), problem
            outcomes["refused"] += 1
        finally:
            (config_dir / name).write_text(SHIPPED[name], encoding="utf-8")

    one()
    assert outcomes["refused"] > outcomes["loaded"] > 0, outcomes  # most breakages are refused, some harmless
