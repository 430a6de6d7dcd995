"""A weight soup: one model whose weights are the mean of several runs' models.

Phase-2 warm restarts from the same phase-1 checkpoint end near one minimum,
so the mean of their weights is again a good model and usually a better one
than each (Wortsman et al., 2022, "Model soups"). Inference cost is unchanged:
same architecture, same size. On FER2013 the soup of the v3 and v4 restarts
gained 0.9 pp over the better of them, that of v4 and the distilled v7 0.1 pp
(docs/recipe.md). BatchNorm statistics are averaged with the weights:
re-estimating them measured no better there.
"""

from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path

from ferkeras.artifacts import KERAS_FILE, KERAS_ONLY, resolve_model_file
from ferkeras.card import add_ancestor, portable_config, read_card, run_name, total_compute_seconds, write_card
from ferkeras.errors import FerKerasError
from ferkeras.models.files import load_keras_model
from ferkeras.training.averaging import average_snapshots
from ferkeras.training.callbacks import save_model_atomic
from ferkeras.training.run_folder import PHASES

# What every ingredient must share with the first for their weights to mean the same thing.
MATCHING_CARD_KEYS = ("class_names", "input", "preprocessing", "architecture")


def make_soup(runs: list[Path], output: Path) -> Path:
    """Write ``output/model.keras``, the mean of the runs' ``model.keras`` weights, and its card.

    The card is the first run's, with ``training.soup_of`` naming the runs,
    ``training.ancestors`` holding each model behind them once and
    ``training.compute_seconds`` counting a phase the runs share (a copied phase 1) once. Its metrics are cleared: run ``ferkeras
    evaluate --update-card`` on the result.
    """
    runs = [Path(run) for run in runs]
    if len(runs) < 2:
        raise FerKerasError("a soup needs at least two run folders")
    cards = [read_card(run) for run in runs]
    for run, card in zip(runs[1:], cards[1:]):
        for key in MATCHING_CARD_KEYS:
            if card.get(key) != cards[0].get(key):
                raise FerKerasError(f"cannot average {run} with {runs[0]}: their model cards' {key!r} differ")
    models = [_model_file(run) for run in runs]
    model = load_keras_model(models[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns once per layer before it raises on a mismatch
            average_snapshots(model, models)
    except ValueError:
        raise FerKerasError(f"cannot average {', '.join(map(str, models))}: their weights have different shapes") from None

    target = Path(output) / KERAS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, target)
    write_card(target, soup_card(runs, cards))
    copy_training_records(runs, target.parent)
    return target


def soup_card(runs: list[Path], cards: list[dict]) -> dict:
    """The first card with the soup's training record and no metrics."""
    card = copy.deepcopy(cards[0])
    ancestors: dict = {}
    for run, card_ in zip(runs, cards):
        add_ancestor(ancestors, run_name(run), card_.get("training", {}))
    training = {"soup_of": [run_name(run) for run in runs], "ancestors": ancestors}
    card["training"] = {
        # the first run's config: its data root serves parity and calibration
        "config": portable_config(cards[0].get("training", {}).get("config", {})),
        "soup_of": training["soup_of"],
        "compute_seconds": total_compute_seconds(training),
        "ancestors": ancestors,
    }
    card["metrics"] = {}
    card["artifacts"] = {"keras": {"file": KERAS_FILE}}
    card["name"] = f"{cards[0].get('name', 'model')}_soup{len(cards)}"
    return card


def _curves_name(run: str) -> str:
    return f"training_curves_{run}.png"


def _history_name(run: str, phase: str) -> str:
    return f"history_{run}_{phase}.csv"


def copy_training_records(runs: list[Path], output: Path) -> None:
    """Each run's curves and per-phase histories, named after the run.

    A history identical to one already copied (a phase 1 the runs share) is
    copied once, under the first run's name. An ingredient that is itself a
    soup (or a shipped model folder) passes on the records it holds, names kept.
    """
    copied: set[bytes] = set()
    for run in runs:
        folder = run if run.is_dir() else run.parent
        sources = [(folder / "training_curves.png", _curves_name(folder.name))]
        sources += [(phase / "history.csv", _history_name(folder.name, phase.name)) for phase in sorted(folder.glob("phase*"))]
        sources += [
            (path, path.name) for path in sorted(folder.glob("training_curves_*.png")) + sorted(folder.glob("history_*.csv"))
        ]
        for source, name in sources:
            if not source.is_file():
                continue
            content = source.read_bytes()
            if source.suffix == ".csv" and content in copied:
                continue
            copied.add(content)
            (output / name).write_bytes(content)


def keep_ancestor_records(replaced: Path, output: Path) -> list[Path]:
    """Copy from a replaced model folder the curves and histories of runs ``output``'s model descends from.

    A recipe in steps ships its last run, whose folder holds only its own records;
    the earlier steps' records live on in the folder it replaces. Returns the copies.
    """
    kept = []
    for ancestor in read_card(output).get("training", {}).get("ancestors", {}):
        run = Path(run_name(ancestor)).name
        for name in (_curves_name(run), *(_history_name(run, phase) for phase in PHASES)):
            if (replaced / name).is_file() and not (output / name).exists():
                shutil.copy2(replaced / name, output / name)
                kept.append(output / name)
    return kept


def _model_file(run: Path) -> Path:
    try:
        return resolve_model_file(run, KERAS_ONLY)
    except FerKerasError as exc:
        raise FerKerasError(f"no model to average in {run}: {exc}") from None
