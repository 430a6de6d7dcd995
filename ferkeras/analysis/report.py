"""``report.html``: one self-contained page per batch (pictures inlined, no scripts), readable offline."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import pandas as pd

from ferkeras import __version__
from ferkeras.analysis.layout import REPORT_HTML, TIMELINE_PNG, TRACKS_CSV
from ferkeras.io import atomic_write_text

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failed { color: #b71c1c; } .muted { color: #777; } img.timeline { max-width: 100%; }
.people { display: flex; flex-wrap: wrap; gap: .8em; } .person { text-align: center; font-size: .85em; }
.person img { display: block; width: 72px; height: 72px; border-radius: 4px; }
"""


def _data_uri(path: Path, kind: str) -> str:
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "<td></td>"
    if isinstance(value, (int, float)):
        return f'<td class="num">{value:g}</td>' if isinstance(value, float) else f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _video_section(out: Path, row: dict) -> str:
    folder = out / row["video"]
    name = html.escape(row["video"])
    if row["status"] not in ("analysed", "done before") or not (folder / TRACKS_CSV).is_file():
        return ""
    tracks = pd.read_csv(folder / TRACKS_CSV)
    parts = [f'<h2 id="{name}">{name}</h2>', f'<p class="muted">{html.escape(row["source"])}</p>']
    people = []
    for _, track in tracks.sort_values("seconds_visible", ascending=False).iterrows():
        picture = folder / str(track["thumbnail"])
        image = f'<img alt="person {int(track["person"])}" src="{_data_uri(picture, "image/jpeg")}">' if picture.is_file() else ""
        people.append(
            f'<div class="person">{image}#{int(track["person"])} {html.escape(str(track["dominant_emotion"]))}<br>'
            f"{track['seconds_visible']:.1f} s, {track['first_seen_s']:.1f}-{track['last_seen_s']:.1f} s</div>"
        )
    parts.append(f'<div class="people">{"".join(people) or "<p>no faces found</p>"}</div>')
    if (folder / TIMELINE_PNG).is_file():
        parts.append(
            f'<img class="timeline" alt="emotion timeline of {name}" src="{_data_uri(folder / TIMELINE_PNG, "image/png")}">'
        )
    return "\n".join(parts)


def _model_paragraph(quality: dict | None) -> str:
    """What the model's card says of how far its labels can be trusted (:func:`ferkeras.card.quality_summary`)."""
    if quality is None:
        return ""
    view = {"flip": "flip-averaged", "none": "one pass per face"}.get(quality["view"], quality["view"])
    text = f"Model: {quality['model']} ({quality['file']}, {view}). "
    if quality["val_accuracy"] is not None:
        text += (
            f"On val ({quality['val_faces']:,} faces of {quality['val_data']}) it scores {quality['val_accuracy'] * 100:.1f} % accuracy, "
            f"macro-F1 {quality['val_macro_f1']:.3f}"
        )
        agreement = quality["agreement_with_keras"]
        text += (
            f"; this file gives the Keras model's label for {agreement * 100:.1f} % of them. " if agreement is not None else ". "
        )
    else:
        text += "Its card has no val scores for this view (ferkeras evaluate records them). "
    if quality["temperature"] is not None:
        ece = quality["ece_15_bins"] or {}
        text += f"Probabilities are temperature-scaled (T = {quality['temperature']:.2f}"
        text += (
            f"; calibration error on val, one pass per face: {ece['before']:.3f} before, {ece['after']:.3f} after)."
            if {"before", "after"} <= set(ece)
            else ")."
        )
    else:
        text += "Probabilities are the network's softmax (its card stores no temperature)."
    return f'<p class="muted">{html.escape(text)}</p>'


def write_report(out: Path, summary: list[dict], counts: dict[str, int], quality: dict | None = None) -> Path:
    """Write ``out/report.html`` from the summary rows (``counts``: how many have each status), the
    per-video folders and, where known, the model's quality (:func:`ferkeras.card.quality_summary`)."""
    columns = ["video", "status", "duration_s", "people", "dominant_emotion", "reidentified", "error"]
    header = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in columns)
    lines = []
    for row in summary:
        css = ' class="failed"' if row["status"] == "failed" else ""
        cells = "".join(
            _cell(row.get(c))
            if c != "video"
            else f'<td><a href="#{html.escape(row["video"])}">{html.escape(row["video"])}</a></td>'
            for c in columns
        )
        lines.append(f"<tr{css}>{cells}</tr>")
    said = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    body = [
        f"<h1>Emotion analysis: {len(summary)} video(s)</h1>",
        f'<p class="muted">{said}. Made {time.strftime("%Y-%m-%d %H:%M")} by ferkeras {__version__}. '
        "Each picture stacks one person's emotion probabilities over video time; tables are in each video's folder.</p>",
        _model_paragraph(quality),
        f"<table><tr>{header}</tr>{''.join(lines)}</table>",
        *(_video_section(out, row) for row in summary),
    ]
    page = f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ferkeras analysis</title><style>{STYLE}</style></head><body>{"".join(body)}</body></html>\n'
    path = out / REPORT_HTML
    atomic_write_text(path, page)
    return path
