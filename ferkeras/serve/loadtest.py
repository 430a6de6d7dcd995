"""A bounded load test of ``ferkeras serve`` on this machine (docs/serve.md, "Load").

    python -m ferkeras.serve.loadtest --clients 8 --seconds 30

starts ``ferkeras serve`` on a free loopback port (or uses ``--url``), then runs
``--clients`` concurrent clients for ``--seconds``: ``http`` clients POST clip
frames to ``/v1/faces`` back to back; ``ws`` clients stream them over
``/v1/stream`` like cameras at up to ``--stream-fps``, each waiting for the
answer to a frame before sending the next. Prints latency percentiles,
throughput, errors and the server's resident memory before and after. The clients
share the machine with the server, so on a small CPU the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from ferkeras.inference.auto import cpu_identity

DEFAULT_CLIP = Path("samples/stage_and_audience.mp4")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (Linux), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class ServerProcess:
    """``ferkeras serve ARGS`` on a free loopback port, started and stopped as a context manager."""

    def __init__(self, *args: str, port: int | None = None, log: Path | None = None, startup_seconds: float = 90):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["serve", "--port", str(self.port), *args]
        self.log = log
        self.startup_seconds = startup_seconds
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ferkeras.cli", *self.args], stdout=output, stderr=subprocess.STDOUT, env=env
            )
        finally:
            if self.log:
                output.close()
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ferkeras {' '.join(self.args)} exited with status {self.process.returncode}" + self._log_tail()
                )
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"ferkeras {' '.join(self.args)} did not answer within {self.startup_seconds:.0f} s" + self._log_tail()
        )

    def _log_tail(self) -> str:
        return f": {self.log.read_text()[-2000:]}" if self.log and self.log.is_file() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def clip_frames(clip: Path, step: int = 10, width: int = 640) -> list[bytes]:
    """Every ``step``-th frame of ``clip`` as JPEG, ``width`` pixels wide (a kiosk camera's frames)."""
    capture = cv2.VideoCapture(str(clip))
    frames, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            scale = width / frame.shape[1]
            frame = cv2.resize(frame, (width, round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA)
            frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
        index += 1
    capture.release()
    if not frames:
        raise SystemExit(f"error: no frames could be read from {clip}")
    return frames


def _http_client(url: str, token: str | None, frames: list[bytes], deadline: float, record) -> None:
    parts = urlsplit(url)
    headers = {"content-type": "image/jpeg", **({"authorization": f"Bearer {token}"} if token else {})}
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    index = 0
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            connection.request("POST", "/v1/faces", body=frames[index % len(frames)], headers=headers)
            response = connection.getresponse()
            body = response.read()
            ok = response.status == 200 and "faces" in json.loads(body)
            record(time.perf_counter() - start, None if ok else f"HTTP {response.status}")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            record(time.perf_counter() - start, type(exc).__name__)
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        index += 1
    connection.close()


def _ws_client(url: str, token: str | None, frames: list[bytes], deadline: float, record, fps: float) -> None:
    from websockets.sync.client import connect

    address = url.replace("http", "ws", 1) + "/v1/stream"
    headers = {"authorization": f"Bearer {token}"} if token else None
    try:
        with connect(address, additional_headers=headers, max_size=None) as socket_:
            index, next_at = 0, time.monotonic()
            while time.monotonic() < deadline:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + 1 / fps, time.monotonic())
                start = time.perf_counter()
                socket_.send(frames[index % len(frames)])
                answer = json.loads(socket_.recv(timeout=30))
                problem = (
                    None if answer.get("type") == "faces" and answer.get("frame") == index else f"answer {answer.get('type')}"
                )
                record(time.perf_counter() - start, problem, skipped=len(answer.get("skipped", [])))
                index += 1
    except (OSError, TimeoutError, ValueError) as exc:
        record(0.0, type(exc).__name__)


def run_load(
    url: str, mode: str, clients: int, seconds: float, frames: list[bytes], token: str | None = None, stream_fps: float = 30.0
) -> dict:
    """``clients`` concurrent clients of kind ``mode`` (http or ws) for ``seconds``; latency in ms."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    skipped_total = [0]
    lock = threading.Lock()

    def record(seconds_taken: float, problem: str | None, skipped: int = 0):
        with lock:
            skipped_total[0] += skipped
            if problem:
                errors[problem] = errors.get(problem, 0) + 1
            else:
                latencies.append(1000 * seconds_taken)

    deadline = time.monotonic() + seconds
    if mode == "http":
        threads = [threading.Thread(target=_http_client, args=(url, token, frames, deadline, record)) for _ in range(clients)]
    else:
        threads = [
            threading.Thread(target=_ws_client, args=(url, token, frames, deadline, record, stream_fps)) for _ in range(clients)
        ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    values = np.array(latencies) if latencies else np.zeros(1)
    return {
        "mode": mode,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "answered": len(latencies),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p90_ms": round(float(np.percentile(values, 90)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
        "max_ms": round(float(values.max()), 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "skipped_frames": skipped_total[0],
    }


def table(results: list[dict]) -> str:
    """Results as a Markdown table."""
    lines = [
        "| mode | clients | seconds | answered | per s | p50 ms | p90 ms | p99 ms | max ms | errors | RSS before -> after MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rss = f"{r.get('rss_before_mb') or 0:.0f} -> {r.get('rss_after_mb') or 0:.0f}"
        lines.append(
            f"| {r['mode']} | {r['clients']} | {r['seconds']} | {r['answered']} | {r['per_second']} | {r['p50_ms']} | {r['p90_ms']} "
            f"| {r['p99_ms']} | {r['max_ms']} | {r['errors']} | {rss} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferkeras.serve.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--mode", choices=("http", "ws", "both"), default="both")
    parser.add_argument("--url", help="A running service (default: start one here).")
    parser.add_argument("--model", default="auto", help="The model of the service started here.")
    parser.add_argument("--token", help="The running service's token.")
    parser.add_argument("--stream-fps", type=float, default=30.0, help="Most frames per second each ws client sends.")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"--clip {args.clip}: no such file")
    frames = clip_frames(args.clip)
    cpu = cpu_identity()
    server = None if args.url else ServerProcess("--model", args.model).start()
    url = args.url or server.url
    request = urllib.request.Request(url + "/v1/health", headers={"authorization": f"Bearer {args.token}"} if args.token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        model = json.load(response)["model"]
    results = []
    try:
        for mode in ("http", "ws") if args.mode == "both" else (args.mode,):
            before = rss_mb(server.process.pid) if server else None
            result = run_load(url, mode, args.clients, args.seconds, frames, args.token, args.stream_fps)
            result.update(rss_before_mb=before, rss_after_mb=rss_mb(server.process.pid) if server else None)
            results.append(result)
    finally:
        if server:
            server.stop()
    print(f"CPU: {cpu['model']} ({os.cpu_count()} cores; {' '.join(cpu['simd'])})")
    print(f"server: {url}, model {model['folder']}/{model['file']}; frames: {len(frames)} JPEGs from {args.clip}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "model": model, "results": results}, indent=2) + "\n")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
