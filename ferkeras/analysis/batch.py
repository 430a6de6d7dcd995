"""``ferkeras analyze``: many videos -> one folder of tables and pictures per video, a summary and a report.

Each video is one unit of work. A worker (this process, a local process pool,
or a Dask cluster) reads the video and returns its tables and pictures; this
process writes them into ``OUT/NAME/`` through a hidden staging folder that is
renamed into place when complete, so a folder under its own name is always a
finished result. ``video.json`` records the video's SHA-256 and the settings'
key; a rerun skips every video whose folder matches both and redoes the rest. A
video that cannot be read is listed as failed in ``summary.csv`` and the batch
goes on.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ferkeras.analysis.layout import (
    BATCH_JSON,
    FRAMES_CSV,
    FRAMES_PARQUET,
    PEOPLE_DIR,
    SUMMARY_CSV,
    TIMELINE_PNG,
    TRACKS_CSV,
    VIDEO_FILE,
)
from ferkeras.analysis.sources import expand_sources
from ferkeras.analysis.video import analyze_video
from ferkeras.artifacts import ACCURATE, ACCURATE_PREFERENCE, resolve_model
from ferkeras.card import quality_summary
from ferkeras.errors import FerKerasError
from ferkeras.io import atomic_write_json, atomic_write_text, ensure_writable, file_sha256, read_json

log = logging.getLogger(__name__)

#: A video's status in summary.csv, in the order they are reported.
STATUSES = ("analysed", "done before", "failed", "not run")


def status_counts(rows) -> dict[str, int]:
    """How many summary rows have each of :data:`STATUSES`."""
    rows = list(rows)
    return {status: sum(row["status"] == status for row in rows) for status in STATUSES}


@dataclass(frozen=True)
class AnalyzeSettings:
    """What decides the results (a change redoes every video): see ``ferkeras analyze --help``."""

    fps: float = 5.0
    model: str = ACCURATE
    detector: str = "blazeface"
    flip: bool = True
    reid: bool = True
    min_face: int = 0
    padding: float = 0.1

    def __post_init__(self):
        if not 0 < self.fps <= 120:
            raise FerKerasError(f"--fps must be above 0 and at most 120, got {self.fps}")


def resolve_settings(settings: AnalyzeSettings) -> tuple[AnalyzeSettings, str]:
    """Settings with the model as a file path, and their key (the model file's hash included)."""
    model = resolve_model(settings.model, ACCURATE_PREFERENCE)
    resolved = AnalyzeSettings(**{**asdict(settings), "model": str(model)})
    record = {**asdict(resolved), "model": model.name, "model_sha256": file_sha256(model)}
    return resolved, hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def _recognizer(model: str, detector: str, min_face: int, padding: float, flip: bool):
    from ferkeras.inference.recognizer import Recognizer

    # threshold 0: every face gets its most likely class; research tables keep the probabilities
    return Recognizer.load(
        model, detector=detector, min_face=min_face, threads=1, smoothing="none", threshold=0.0, padding=padding, flip=flip
    )


def analyze_one(source: str, settings: AnalyzeSettings, progress=None) -> dict:
    """Analyse one video (in any worker): its tables and pictures, or why it failed. Never raises for a bad video."""
    from ferkeras.analysis.tables import frames_table, tracks_table
    from ferkeras.analysis.timeline import timeline_png

    try:
        recognizer = _recognizer(settings.model, settings.detector, settings.min_face, settings.padding, settings.flip)
        result = analyze_video(source, recognizer, settings.fps, settings.reid, progress)
    except FerKerasError as exc:
        return {"source": source, "ok": False, "error": str(exc)}
    except OSError as exc:
        return {"source": source, "ok": False, "error": f"{exc.filename or source}: {exc.strerror or exc}"}
    frames = frames_table(result)
    tracks = tracks_table(frames, result.class_names, settings.fps)
    picture = timeline_png(frames, tracks, result.class_names, Path(source).name, settings.fps)
    return {
        "source": source,
        "ok": True,
        "class_names": result.class_names,
        "facts": result.facts,
        "frames": frames,
        "tracks": tracks,
        "thumbnails": result.thumbnails,
        "timeline": picture,
    }


def folder_names(videos: list[Path]) -> dict[Path, str]:
    """One output folder name per video: its file stem, plus a hash of its path where stems repeat."""
    stems: dict[str, int] = {}
    for video in videos:
        stems[video.stem] = stems.get(video.stem, 0) + 1
    return {
        video: video.stem if stems[video.stem] == 1 else f"{video.stem}-{hashlib.sha1(str(video).encode()).hexdigest()[:8]}"
        for video in videos
    }


def finished(folder: Path, digest: str, key: str) -> dict | None:
    """The record of a finished analysis of this content with these settings in ``folder``, else None."""
    record_file = folder / VIDEO_FILE
    if not record_file.is_file():
        return None
    try:
        record = read_json(record_file)
    except FerKerasError:
        return None
    return record if record.get("sha256") == digest and record.get("settings_key") == key else None


OUR_FILES = {VIDEO_FILE, FRAMES_CSV, FRAMES_PARQUET, TRACKS_CSV, TIMELINE_PNG, PEOPLE_DIR}


def _ours(folder: Path) -> bool:
    """A folder this command wrote (finished, or holding only files it writes), which a new result may replace."""
    return (folder / VIDEO_FILE).is_file() or {entry.name for entry in folder.iterdir()} <= OUR_FILES


def remove_stale_staging(out: Path) -> None:
    """Remove the staging folders of a run that was killed (``.NAME.staging``, ``.NAME.old``)."""
    for entry in out.iterdir():
        if entry.is_dir() and entry.name.startswith(".") and entry.name.endswith((".staging", ".old")):
            shutil.rmtree(entry)


def write_video_folder(out: Path, name: str, payload: dict, record: dict) -> None:
    """Write one video's files into ``out/.name.staging``, then rename it to ``out/name``."""
    staging, final = out / f".{name}.staging", out / name
    if staging.exists():
        shutil.rmtree(staging)
    (staging / PEOPLE_DIR).mkdir(parents=True)
    frames = payload["frames"].assign(video=name)
    frames = frames[["video", *payload["frames"].columns]]
    frames.to_csv(staging / FRAMES_CSV, index=False)
    frames.to_parquet(staging / FRAMES_PARQUET, index=False)
    payload["tracks"].assign(thumbnail=[f"{PEOPLE_DIR}/{p}.jpg" for p in payload["tracks"]["person"]]).to_csv(
        staging / TRACKS_CSV, index=False
    )
    (staging / TIMELINE_PNG).write_bytes(payload["timeline"])
    for person, jpeg in payload["thumbnails"].items():
        (staging / PEOPLE_DIR / f"{person}.jpg").write_bytes(jpeg)
    atomic_write_json(staging / VIDEO_FILE, record)  # last: its presence marks the folder complete
    if final.exists():
        if not _ours(final):
            shutil.rmtree(staging)
            raise FerKerasError(f"{final} exists and is not a ferkeras analyze result; move it away or choose another --output")
        old = out / f".{name}.old"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)


class _Local:
    """The workers of this machine: this process (workers=1) or a process pool."""

    def __init__(self, workers: int):
        self.pool = None
        if workers > 1:
            self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def results(self, jobs, progress_for):
        if self.pool is None:
            for source, settings in jobs:
                yield analyze_one(source, settings, progress_for(source))
            return
        futures = [self.pool.submit(analyze_one, source, settings) for source, settings in jobs]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class _Cluster:
    """An existing Dask distributed scheduler: workers must be able to read the video paths."""

    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError:
            raise FerKerasError("--cluster needs Dask distributed: pip install 'ferkeras[cluster]'") from None
        try:
            self.client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise FerKerasError(f"--cluster {address}: cannot reach the Dask scheduler ({exc})") from None

    def results(self, jobs, _progress_for):
        from distributed import as_completed

        futures = [self.client.submit(analyze_one, source, settings, pure=False) for source, settings in jobs]
        for future in as_completed(futures):
            yield future.result()

    def close(self):
        self.client.close()


def _summary_row(name: str, source: Path, record: dict | None, status: str, error: str = "") -> dict:
    facts = (record or {}).get("facts", {})
    return {
        "video": name,
        "source": str(source),
        "status": status,
        "error": error,
        "duration_s": facts.get("duration_s"),
        "analysed_frames": facts.get("analysed_frames"),
        "people": (record or {}).get("people"),
        "reidentified": facts.get("reidentified"),
        "dominant_emotion": (record or {}).get("dominant_emotion", ""),
        "seconds": facts.get("seconds"),
    }


def run_batch(
    sources,
    output: str | Path,
    settings: AnalyzeSettings = AnalyzeSettings(),
    workers: int = 1,
    cluster: str | None = None,
    quiet: bool = False,
) -> list[dict]:
    """Analyse every video in ``sources`` into ``output``; return the summary rows (also in summary.csv)."""
    from tqdm import tqdm

    out = ensure_writable(output, "--output folder")
    if workers < 1:
        raise FerKerasError(f"--workers must be at least 1, got {workers}")
    videos = expand_sources(sources)
    settings, key = resolve_settings(settings)
    remove_stale_staging(out)
    names = folder_names(videos)
    rows: dict[Path, dict] = {}
    jobs, digests = [], {}
    for video in videos:
        try:
            digests[video] = file_sha256(video)
        except OSError as exc:
            rows[video] = _summary_row(names[video], video, None, "failed", f"{exc.strerror or exc}")
            continue
        record = finished(out / names[video], digests[video], key)
        if record is not None:
            rows[video] = _summary_row(names[video], video, record, "done before")
        else:
            jobs.append((str(video), settings))
    log.info(f"{len(videos)} video(s): {len(jobs)} to analyse, {status_counts(rows.values())['done before']} done before")
    by_source = {str(v): v for v in videos}
    bar = tqdm(total=len(jobs), desc="videos", unit="video", disable=quiet or not jobs, position=0)
    current = {"bar": None}

    def progress_for(source):
        """A bar over the seconds of one video (serial runs only), made at its first update."""
        if quiet:
            return None

        def update(done, total):
            bar_ = current["bar"]
            if bar_ is None:
                bar_ = current["bar"] = tqdm(
                    total=round(total) if total else None, desc=Path(source).name, unit="s video", leave=False, position=1
                )
            bar_.n = round(min(done, bar_.total or done))
            bar_.refresh()

        return update

    engine = _Cluster(cluster) if cluster else _Local(workers)
    interrupted = False
    try:
        for payload in engine.results(jobs, progress_for):
            if current["bar"] is not None:
                current["bar"].close()
                current["bar"] = None
            video = by_source[payload["source"]]
            if not payload["ok"]:
                rows[video] = _summary_row(names[video], video, None, "failed", payload["error"])
                log.warning(f"{video}: {payload['error']}")
            else:
                record = _record(video, digests[video], key, settings, payload)
                try:
                    write_video_folder(out, names[video], payload, record)
                    rows[video] = _summary_row(names[video], video, record, "analysed")
                except FerKerasError as exc:
                    rows[video] = _summary_row(names[video], video, None, "failed", str(exc))
                    log.warning(str(exc))
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        engine.close()
    summary = [rows.get(v) or _summary_row(names[v], v, None, "not run", "interrupted" if interrupted else "") for v in videos]
    _write_batch(out, summary, settings, key, model_quality(settings))
    if interrupted:
        raise KeyboardInterrupt
    return summary


def _record(video: Path, digest: str, key: str, settings: AnalyzeSettings, payload: dict) -> dict:
    tracks = payload["tracks"]
    weighted = ""
    if len(tracks):
        totals = {name: float((tracks[f"share_{name}"] * tracks["seconds_visible"]).sum()) for name in payload["class_names"]}
        weighted = max(totals, key=totals.get)
    return {
        "source": str(video),
        "sha256": digest,
        "settings_key": key,
        "settings": asdict(settings),
        "class_names": payload["class_names"],
        "facts": payload["facts"],
        "people": int(len(tracks)),
        "dominant_emotion": weighted,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def model_quality(settings: AnalyzeSettings) -> dict | None:
    """The analysing model's val scores for the view used (flip-averaged or not) and calibration, from its card."""
    try:
        return quality_summary(settings.model, "flip" if settings.flip else "none")
    except FerKerasError:
        return None  # no card: the report says nothing of the model's quality


def _write_batch(out: Path, summary: list[dict], settings: AnalyzeSettings, key: str, quality: dict | None) -> None:
    import pandas as pd

    from ferkeras.analysis.report import write_report

    table = pd.DataFrame(summary)
    for column in ("analysed_frames", "people", "reidentified"):
        table[column] = table[column].astype("Int64")
    atomic_write_text(out / SUMMARY_CSV, table.to_csv(index=False))
    counts = status_counts(summary)
    atomic_write_json(
        out / BATCH_JSON,
        {"settings": asdict(settings), "settings_key": key, "model": quality, "counts": counts, "videos": summary},
    )
    write_report(out, summary, counts, quality)
