"""Provisioning detector weights for an air-gapped site: nothing downloads at run time.

    shaftwatch model fetch --from /media/usb/yolo11s.pt    copy a file the user names
    shaftwatch model fetch --name yolo11n.pt               download the standard weights (needs a network)
    shaftwatch model check                                 load the configured model and run it once
    shaftwatch model quantize --frames /media/usb/cam01    an int8 copy of the configured ONNX model,
                                                           calibrated on the cameras' own pictures

Either way the file lands in <data_dir>/models/, is loaded and run once to prove it
works, and the command prints its sha256 and the line to put in shaftwatch.yaml.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from streams.config import ShaftWatchConfig


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_model(path: Path) -> str:
    """Load with ultralytics and run once on a real photo it ships; a line saying what it found."""
    from detectors.objects import ObjectDetector

    detector = ObjectDetector(path)
    import cv2
    import ultralytics

    photo = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    image = cv2.imread(str(photo)) if photo.exists() else np.zeros((640, 640, 3), np.uint8)
    detector.detect([image])  # warm-up
    started = time.perf_counter()
    found = detector.detect([image])[0]
    ms = (time.perf_counter() - started) * 1000
    labels = ", ".join(f"{d.label} {d.score:.2f}" for d in found) or "nothing"
    return f"{path.name}: input {detector.input_size} px, {ms:.0f} ms on {photo.name}: {labels}"


def fetch(cfg: ShaftWatchConfig, source: str | None, name: str | None) -> Path:
    target_dir = cfg.data_dir / "models"
    target_dir.mkdir(parents=True, exist_ok=True)
    if source:
        src = Path(source)
        if not src.is_file():
            raise FileNotFoundError(f"{src} does not exist")
        target = target_dir / src.name
        shutil.copyfile(src, target)
    else:
        os.environ.pop("YOLO_OFFLINE", None)  # the user asked for a download
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                from ultralytics.utils.downloads import attempt_download_asset

                downloaded = Path(attempt_download_asset(name))
            except Exception as exc:  # noqa: BLE001 - any failure: say what and how to do it offline
                raise RuntimeError(f"could not download {name}: {exc}. On an air-gapped machine, copy the "
                                   "weights on a USB stick and use --from PATH") from None
            finally:
                os.chdir(cwd)
            target = target_dir / downloaded.name
            shutil.move(str(Path(tmp) / downloaded), target)
    print(check_model(target))
    print(f"sha256 {sha256(target)}")
    print(f"now set in configs/shaftwatch.yaml:  model_path: {target}")
    return target


def quantize(cfg: ShaftWatchConfig, source: str | None, frames: list[str], out: str | None) -> Path:
    """The int8 copy of an ONNX model (detectors.quantize), calibrated on pictures from
    ``frames`` (videos or picture folders), checked like a fetched model."""
    from detectors.quantize import calibration_pictures, int8_copy

    src = Path(source) if source else cfg.model_path
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist")
    if src.suffix.lower() != ".onnx":
        raise RuntimeError(f"{src.name}: only ONNX models are quantized here (a .pt model runs as PyTorch weights)")
    target = Path(out) if out else cfg.data_dir / "models" / f"{src.stem}-int8.onnx"
    pictures = calibration_pictures([Path(f) for f in frames])
    started = time.perf_counter()
    int8_copy(src, target, pictures)
    print(f"{target.name}: convolutions in int8, calibrated on {len(pictures)} pictures "
          f"in {time.perf_counter() - started:.0f} s")
    print(check_model(target))
    print(f"sha256 {sha256(target)}")
    print(f"now set in configs/shaftwatch.yaml:  model_path: {target}")
    return target
