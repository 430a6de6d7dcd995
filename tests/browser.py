"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, with no browser download."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these Chromium tries to reach Google's servers at start (this machine has no internet).
QUIET_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser():
    """Skip (saying why) where Chromium or Playwright is missing; CI installs both (.ci/run)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("browser test skipped: no Chromium (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api", reason="browser test skipped: playwright is not installed")


def write_y4m(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """BGR frames -> a Y4M file, the format Chromium's fake camera plays (in a loop)."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as stream:
        stream.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            stream.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def launch(playwright, *flags: str):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*QUIET_FLAGS, *flags])


def not_blank(png: Path) -> float:
    """The screenshot's pixel standard deviation (a blank page is ~0)."""
    image = cv2.imread(str(png))
    assert image is not None, f"{png} is not an image"
    return float(image.std())


def keep_screenshot(png: Path, name: str) -> None:
    """Copy a screenshot to $FERKERAS_SCREENSHOTS (e.g. docs/images), which is how the README's are made."""
    folder = os.environ.get("FERKERAS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, Path(folder) / name)
