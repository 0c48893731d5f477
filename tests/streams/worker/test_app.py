"""streams.worker.app: the Faust application built from the configuration."""

from __future__ import annotations

import pytest

from streams.config import ConfigError, load_config
from streams.worker.app import create_app
from tests.helpers import isolated_config


def test_the_producer_lingers_as_configured_and_the_default_batches(tmp_path):
    # aiokafka gets what Faust hands it: a linger of 0 sent each signal as its own request.
    shipped = create_app(load_config(isolated_config(tmp_path / "shipped", "app")))
    assert shipped.producer._settings_default()["linger_ms"] == 5
    tuned = create_app(load_config(isolated_config(tmp_path / "tuned", "app", app={"producer_linger_ms": 20})))
    assert tuned.producer._settings_default()["linger_ms"] == 20


def test_a_negative_linger_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="producer_linger_ms"):
        load_config(isolated_config(tmp_path, "app", app={"producer_linger_ms": -1}))
