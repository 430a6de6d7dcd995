"""A fixed pool of recognizers shared by all requests and streams.

A model interpreter runs one call at a time, so the service loads ``engines``
copies (one thread each) and lends them out; a request waits for a free one
instead of the server starting unbounded work. A stream keeps its own tracker
(tracks and smoothing) and borrows whichever engine is free for each frame.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import numpy as np
from starlette.concurrency import run_in_threadpool

from ferkeras import __version__
from ferkeras.errors import FerKerasError
from ferkeras.images import decode_image, sniff_image
from ferkeras.inference.recognizer import Recognizer
from ferkeras.io import file_sha256


class BadImage(FerKerasError):
    """An uploaded image the service refuses: ``status`` and ``code`` say how to answer."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def decode_upload(raw: bytes, max_pixels: int) -> np.ndarray:
    """Encoded JPEG/PNG/WebP bytes -> BGR image, judged by content and size before decoding."""
    if not raw:
        raise BadImage(400, "empty_body", "the request carries no image")
    sniffed = sniff_image(raw)
    if sniffed is None:
        raise BadImage(
            415, "unsupported_image", "the body is not a JPEG, PNG or WebP image (judged by its content, not its Content-Type)"
        )
    kind, width, height = sniffed
    if width < 1 or height < 1:
        raise BadImage(400, "bad_image", f"the {kind} header declares a {width}x{height} image")
    if width * height > max_pixels:
        raise BadImage(
            413,
            "too_many_pixels",
            f"the {kind} image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}",
        )
    image, problem = decode_image(np.frombuffer(raw, np.uint8), gray=False)
    if image is None:
        raise BadImage(400, "bad_image", f"cannot decode the {kind} image: {problem}")
    return image


class EnginePool:
    """``size`` recognizers on the same model, lent out one request at a time."""

    def __init__(self, model, size: int, detector: str = "blazeface", **options):
        self.recognizers = [Recognizer.load(model, detector=detector, threads=1, **options) for _ in range(size)]
        self._free: asyncio.Queue[Recognizer] | None = None
        self.busy = 0
        first = self.recognizers[0]
        self.predictor = first.predictor
        self.class_names = first.class_names
        self.detector = detector
        self.started = time.time()
        card = self.predictor.card
        self.model_info = {
            "name": card.get("name", self.predictor.path.parent.name),
            "version": file_sha256(self.predictor.path)[:12],
            "file": self.predictor.path.name,
            "folder": self.predictor.path.parent.name,
            "format": self.predictor.format,
            "ferkeras": __version__,
        }

    @property
    def size(self) -> int:
        return len(self.recognizers)

    def _queue(self) -> asyncio.Queue:
        if self._free is None:  # made in the server's event loop, not at import
            self._free = asyncio.Queue()
            for recognizer in self.recognizers:
                self._free.put_nowait(recognizer)
        return self._free

    @asynccontextmanager
    async def engine(self):
        """Borrow a recognizer (waits while all are busy)."""
        queue = self._queue()
        recognizer = await queue.get()
        self.busy += 1
        try:
            yield recognizer
        finally:
            self.busy -= 1
            queue.put_nowait(recognizer)

    async def run(self, call, *args):
        """``call(recognizer, *args)`` on a free recognizer, in a worker thread."""
        async with self.engine() as recognizer:
            return await run_in_threadpool(call, recognizer, *args)

    def new_tracker(self):
        """Tracks and smoothing for one stream."""
        return self.recognizers[0].new_tracker()

    def card_summary(self) -> dict:
        """The model card's essentials, for ``GET /v1/model``."""
        card = self.predictor.card
        val = card.get("metrics", {}).get("val", {})
        plain = val.get("none", val) if isinstance(val, dict) else {}
        return {
            **self.model_info,
            "class_names": self.class_names,
            "input": card.get("input", {}),
            "preprocessing": card.get("preprocessing", {}),
            "architecture": card.get("architecture", {}),
            "calibration": {"temperature": self.predictor.temperature, "fitted": "calibration" in card},
            "metrics": {"fer2013_val": {k: plain[k] for k in ("accuracy", "macro_f1") if k in plain}},
            "detector": self.detector,
        }
