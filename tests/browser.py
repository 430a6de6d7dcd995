"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, with no browser download."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 60, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the server exited with status {process.returncode}: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


def start_command(args: list[str], health_url: str, log: Path) -> subprocess.Popen:
    """Start ``ferkeras ARGS`` and wait until ``health_url`` answers."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ferkeras.cli", *args], stdout=output, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_for(health_url, process=process)
    except Exception:
        process.kill()
        raise RuntimeError(f"ferkeras {' '.join(args)} did not start: {log.read_text()[-2000:]}") from None
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


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
