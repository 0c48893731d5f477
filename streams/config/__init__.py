"""Configuration: one YAML file per section, one module and pydantic model per file.

The files live in one directory (``configs/`` by default, ``SHAFTWATCH_CONFIG_DIR``
to change it)::

    shaftwatch.yaml   runtime: Kafka, topics, HTTP, store, data dirs, demo feeds   (runtime.py)
    sites.yaml        the shaft ledger: sealed / closed shafts and their townships (sites.py)
    cameras.yaml      cameras, their zones and masks                              (cameras.py)
    meters.yaml       power meters and the sites they feed                        (meters.py)
    fences.yaml       electronic-fence zones                                      (fences.py)
    thresholds.yaml   detection and fusion thresholds, the night profile          (thresholds.py)

Unknown keys are errors. Every error names the file, the line, the key path and the
problem (errors.py), so an ops person can fix a typo at 3 a.m. without reading Python.
loading.py reads the directory and checks references between files; live.py picks up a
changed thresholds.yaml in a running worker. What the rest of ShaftWatch uses is named
here.
"""

from streams.config.cameras import Camera
from streams.config.errors import ConfigError, ConfigProblem
from streams.config.fences import FenceZone
from streams.config.loading import (
    SECTION_FILES, ShaftWatchConfig, config_dir_from_env, config_json_schema, load_config,
)
from streams.config.meters import Meter
from streams.config.runtime import IngestSource, LocalBrokerSettings
from streams.config.thresholds import ThresholdsFile

__all__ = [
    "SECTION_FILES", "Camera", "ConfigError", "ConfigProblem", "FenceZone", "IngestSource", "LocalBrokerSettings",
    "Meter", "ShaftWatchConfig", "ThresholdsFile", "config_dir_from_env", "config_json_schema", "load_config",
]
