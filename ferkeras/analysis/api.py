"""``ferkeras.analyze(paths, ...)``: the batch analysis from Python, with its tables as pandas DataFrames."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ferkeras.analysis.batch import AnalyzeSettings, run_batch
from ferkeras.analysis.layout import BATCH_JSON, FRAMES_PARQUET, SUMMARY_CSV, TRACKS_CSV
from ferkeras.artifacts import ACCURATE
from ferkeras.io import read_json


@dataclass
class Analysis:
    """Tables of one batch: ``frames`` (one row per face per analysed frame), ``tracks`` (one row per
    person per video) and ``videos`` (one row per video with its status); each names its ``video``.
    ``model`` is what the model's card says of its quality (:func:`ferkeras.card.quality_summary`),
    None where the card or the output folder does not say."""

    frames: pd.DataFrame
    tracks: pd.DataFrame
    videos: pd.DataFrame
    model: dict | None = None


def load_results(output: str | Path) -> Analysis:
    """The tables of a finished ``ferkeras analyze`` output folder."""
    output = Path(output)
    videos = pd.read_csv(output / SUMMARY_CSV, keep_default_na=False, na_values=[""])
    frames, tracks = [], []
    for name in videos.loc[videos["status"].isin(["analysed", "done before"]), "video"]:
        frames.append(pd.read_parquet(output / name / FRAMES_PARQUET))
        tracks.append(pd.read_csv(output / name / TRACKS_CSV).assign(video=name))
    batch = read_json(output / BATCH_JSON, "analysis record") if (output / BATCH_JSON).is_file() else {}
    return Analysis(
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
        pd.concat(tracks, ignore_index=True) if tracks else pd.DataFrame(),
        videos,
        batch.get("model") if isinstance(batch, dict) else None,
    )


def analyze(
    paths,
    output: str | Path | None = None,
    fps: float = 5.0,
    model: str = ACCURATE,
    detector: str = "blazeface",
    flip: bool = True,
    reid: bool = True,
    workers: int = 1,
    cluster: str | None = None,
    quiet: bool = True,
) -> Analysis:
    """Analyse videos (files, folders, manifests) as ``ferkeras analyze`` does and return the tables.

    With ``output`` the files are kept there and a rerun skips finished videos;
    without it they go to a temporary folder that is removed afterwards.
    """
    settings = AnalyzeSettings(fps=fps, model=model, detector=detector, flip=flip, reid=reid)
    if output is not None:
        run_batch(paths, output, settings, workers, cluster, quiet)
        return load_results(output)
    with tempfile.TemporaryDirectory(prefix="ferkeras-analyze-") as folder:
        run_batch(paths, folder, settings, workers, cluster, quiet)
        return load_results(folder)
