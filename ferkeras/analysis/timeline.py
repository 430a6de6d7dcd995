"""The timeline picture: each person's emotion probabilities over video time, stacked, one row per person."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from ferkeras.analysis.tables import probability_columns

#: One colour per class, for a white background (the serve page uses brighter ones on its dark one).
COLORS = {
    "angry": "#e53935",
    "disgust": "#7cb342",
    "fear": "#8e63ce",
    "happy": "#fbc02d",
    "neutral": "#90a4ae",
    "sad": "#29b6f6",
    "surprise": "#fb8c00",
}
MAX_PEOPLE = 8


def timeline_png(frames: pd.DataFrame, tracks: pd.DataFrame, class_names: list[str], title: str, fps: float) -> bytes:
    """A PNG: for the ``MAX_PEOPLE`` people seen longest, stacked probabilities against time (gaps left empty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = tracks.sort_values("seconds_visible", ascending=False).head(MAX_PEOPLE).sort_values("first_seen_s")
    end = max(float(frames["time_s"].max()) if len(frames) else 1.0, 1.0)
    rows = max(len(shown), 1)
    figure, axes = plt.subplots(rows, 1, figsize=(10, 0.3 + 1.1 * rows), sharex=True, squeeze=False)
    columns = probability_columns(class_names)
    for axis, (_, track) in zip(axes[:, 0], shown.iterrows()):
        group = frames[frames["person"] == track["person"]].sort_values("time_s")
        times = group["time_s"].to_numpy()
        values = group[columns].to_numpy(np.float64)
        # each analysed frame stands for 1/fps seconds: draw it as a step of that width,
        # and leave the time between a person's appearances empty
        step = 1.0 / fps
        x = np.stack([times, times + step], axis=1).ravel()
        y = np.repeat(values, 2, axis=0)
        breaks = np.flatnonzero(np.diff(times) > 1.5 * step)
        x = np.insert(x, 2 * (breaks + 1), np.nan)
        y = np.insert(y, 2 * (breaks + 1), np.nan, axis=0)
        bottom = np.zeros(len(x))
        for index, name in enumerate(class_names):
            top = bottom + y[:, index]
            axis.fill_between(x, bottom, top, color=COLORS.get(name, f"C{index}"), linewidth=0)
            bottom = top
        axis.set_ylim(0, 1)
        axis.set_yticks([])
        axis.set_ylabel(f"#{int(track['person'])}\n{track['dominant_emotion']}", rotation=0, ha="right", va="center", fontsize=9)
        axis.set_xlim(0, end)
    if shown.empty:
        axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_yticks([])
    axes[-1, 0].set_xlabel("video time (s)")
    hidden = len(tracks) - len(shown)
    axes[0, 0].set_title(
        title + (f"  (the {MAX_PEOPLE} people seen longest; {hidden} more in tracks.csv)" if hidden > 0 else ""),
        fontsize=10,
        loc="left",
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS.get(n, f"C{i}")) for i, n in enumerate(class_names)]
    figure.legend(handles, class_names, loc="upper right", ncol=len(class_names), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.97 if rows > 1 else 0.92))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
