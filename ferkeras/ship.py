"""``ferkeras ship``: a finished run (or soup) becomes a model folder in ``saved_models/``.

One step does what shipping a model takes: copy the model, its card, config and
training records; evaluate on val with flip and ten-crop TTA (stored in the card);
export float16 and int8 TFLite (and ONNX) with parity; time every file.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ferkeras.artifacts import CARD_FILE, CONFIG_FILE, KERAS_FILE, KERAS_ONLY, resolve_model_file
from ferkeras.card import read_card
from ferkeras.errors import FerKerasError
from ferkeras.io import atomic_write_json, atomic_write_text, ensure_writable

log = logging.getLogger(__name__)


def ship(run: str | Path, name: str, data: str | Path, into: str | Path = "saved_models", onnx: bool = True) -> Path:
    """Copy, evaluate, convert and bench ``run`` into ``into/name``; returns that folder.

    A folder already there is replaced only if it is a model folder (it has a
    card), and only once the new one is complete: until then it waits aside and
    comes back if anything fails. The curves and histories it holds of runs the
    new model descends from (a recipe's earlier steps) are kept.
    """
    from ferkeras.evaluation.report import evaluate
    from ferkeras.export.workflow import run_conversions
    from ferkeras.inference.bench import benchmark, format_table, model_files
    from ferkeras.training.soup import copy_training_records, keep_ancestor_records

    model = resolve_model_file(run, KERAS_ONLY)
    source = model.parent
    if not (source / CARD_FILE).is_file():
        raise FerKerasError(f"{source} has no {CARD_FILE}: ship a finished run or soup folder")
    if not name or Path(name).name != name or name.startswith("."):
        raise FerKerasError(f"--name {name!r} must be a plain folder name")
    into = ensure_writable(Path(into), "models folder")
    target = into / name
    if target.exists() and not (target / CARD_FILE).is_file():
        raise FerKerasError(f"{target} exists and is not a model folder (no {CARD_FILE}); refusing to replace it")
    previous = into / f".{name}.previous"
    if previous.exists():
        raise FerKerasError(f"{previous} is left from an interrupted ship: move it back to {target} or delete it")
    if target.exists():
        target.rename(previous)
    try:
        target.mkdir()
        for file in (KERAS_FILE, CARD_FILE, CONFIG_FILE):
            if (source / file).is_file():
                shutil.copy2(source / file, target / file)
        copy_training_records([source], target)
        if previous.exists():
            keep_ancestor_records(previous, target)
        crops = read_card(target).get("preprocessing", {}).get("center_crop")
        tta = ("flip", "tencrop") if crops else ("flip",)  # ten crops need a model trained on crops
        evaluate(target, data, "val", tta, output=target / "eval_val", update_model_card=True)
        run_conversions(target, ("float16", "int8"), onnx=onnx, data=str(data))
        rows = [benchmark(path, threads=1, runs=300, batch=64, data=data, split="val") for path in model_files([target])]
        atomic_write_json(target / "bench.json", rows)
        atomic_write_text(target / "bench.md", format_table(rows) + "\n")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if previous.exists():
            previous.rename(target)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    log.info("shipped %s as %s", source, target)
    return target
