"""The per-frame table and the per-person summary as pandas DataFrames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferkeras.analysis.video import FRAME_COLUMNS, VideoResult


def probability_columns(class_names: list[str]) -> list[str]:
    return [f"p_{name}" for name in class_names]


def frames_table(result: VideoResult) -> pd.DataFrame:
    """One row per face per analysed frame (and one row with no person for a frame without faces)."""
    table = pd.DataFrame(result.rows, columns=[*FRAME_COLUMNS, *probability_columns(result.class_names)])
    for column in ("person", "x", "y", "w", "h"):
        table[column] = table[column].astype("Int64")
    table["label"] = table["label"].astype("string")
    for column in ("confidence", *probability_columns(result.class_names)):
        table[column] = table[column].astype("float64")
    return table


def _label_changes(labels: pd.Series) -> int:
    values = labels.to_numpy()
    return int((values[1:] != values[:-1]).sum()) if len(values) > 1 else 0


def tracks_table(frames: pd.DataFrame, class_names: list[str], fps: float) -> pd.DataFrame:
    """One row per person: when seen, for how long, dominant emotion, mean probabilities, share of time per emotion.

    ``seconds_visible`` counts analysed frames with the person times 1/fps, so
    it does not depend on the video's own frame rate.
    """
    columns = probability_columns(class_names)
    faces = frames.dropna(subset=["person"])
    rows = []
    for person, group in faces.groupby("person", sort=True):
        group = group.sort_values("time_s")
        means = group[columns].mean().to_numpy()
        shares = [(group["label"] == name).mean() for name in class_names]
        rows.append(
            {
                "person": int(person),
                "first_seen_s": float(group["time_s"].iloc[0]),
                "last_seen_s": float(group["time_s"].iloc[-1]),
                "seconds_visible": round(len(group) / fps, 3),
                "frames": len(group),
                "dominant_emotion": class_names[int(np.argmax(means))],
                "label_changes": _label_changes(group["label"]),
                **{f"mean_{name}": round(float(m), 4) for name, m in zip(class_names, means)},
                **{f"share_{name}": round(float(s), 4) for name, s in zip(class_names, shares)},
            }
        )
    ordered = ["person", "first_seen_s", "last_seen_s", "seconds_visible", "frames", "dominant_emotion", "label_changes"]
    ordered += [f"mean_{n}" for n in class_names] + [f"share_{n}" for n in class_names]
    return pd.DataFrame(rows, columns=ordered)
