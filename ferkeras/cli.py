"""Command line: ``ferkeras train | soup | ship | evaluate | calibrate | members | ensemble | convert | bench | cam | serve | summary``.

Each command imports TensorFlow (or the edge runtime) only when it runs, so
``ferkeras --help`` stays fast. A :class:`FerKerasError` (a user's mistake) or an
``OSError`` (a missing, unreadable or full file or folder) is printed as one
``Error: ...`` line and exits with status 1; ``ferkeras --debug`` shows the
traceback instead. Usage errors exit with status 2 (click's convention).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import click

from ferkeras import __version__
from ferkeras.artifacts import ACCURATE, TFLITE_FILES
from ferkeras.config import ATTENTIONS, CLASS_WEIGHTINGS, DEFAULT_DATA, PRECISIONS, STEMS, STRATEGIES
from ferkeras.data.sources import SPLITS
from ferkeras.errors import FerKerasError, describe_os_error
from ferkeras.images import TTA_MODES
from ferkeras.inference.faces import DETECTORS
from ferkeras.inference.smoothing import SMOOTHINGS
from ferkeras.serve.settings import TOKEN_ENV, ServeSettings

#: Set by ``ferkeras --debug`` (or FERKERAS_DEBUG=1): show tracebacks instead of one line.
_DEBUG = {"on": False}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (test runners swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


class _Format(logging.Formatter):
    def format(self, record):
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def _setup_logging(verbose: bool) -> None:
    """ferkeras's progress (INFO) and warnings on stderr as plain lines (other libraries' warnings
    reach stderr through Python's last-resort handler)."""
    logger = logging.getLogger("ferkeras")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Format())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _live_model(model: str, detector: str, threads: int):
    """cam's and serve's ``--model``: ``auto`` is decided (and said) here."""
    from ferkeras.inference.auto import resolve_live_model

    model, why = resolve_live_model(model, detector, threads)
    if why:
        click.echo(why, err=True)
    return model


def friendly_errors(func):
    """Turn expected problems (user errors, OS errors) into one ``Error: ...`` line."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (FerKerasError, OSError) as exc:
            if _DEBUG["on"]:
                raise
            message = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            raise click.ClickException(" ".join(message.split())) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ferkeras")
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of one-line errors.")
def main(verbose: bool, debug: bool) -> None:
    """Facial emotion recognition with a ResNet18-CBAM (FER2013, 7 classes)."""
    _DEBUG["on"] = debug or bool(os.environ.get("FERKERAS_DEBUG"))
    _setup_logging(verbose)
    _quiet_tensorflow()


@main.command()
@click.option(
    "--phase",
    type=click.Choice(["1", "2", "all"]),
    default="all",
    show_default=True,
    help="1: phase 1 (by default CBAM and head only); 2: fine-tune from phase 1's best model; all: both.",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (a run's config.yaml reproduces it).")
@click.option("--preset", default="default", show_default=True, help="Starting values: default or smoke (tiny, for tests).")
@click.option("--data", help="Data root (class folders) or fer2013.csv.")
@click.option("--output", help="Run folder.")
@click.option("--image-size", type=int, help="Face size in pixels.")
@click.option("--crop", type=int, help="Random-crop size in training (0: none).")
@click.option("--channels", type=click.Choice(["1", "3"]), help="1: grayscale, 3: gray as RGB.")
@click.option("--epochs1", type=int, help="Phase 1 epochs.")
@click.option("--epochs2", type=int, help="Phase 2 epochs.")
@click.option("--batch-size", type=int)
@click.option("--lr1", type=float, help="Phase 1 learning rate.")
@click.option("--lr2", type=float, help="Phase 2 learning rate.")
@click.option("--weights", help="none, imagenet, or a resnet18 .safetensors file.")
@click.option("--attention", type=click.Choice(ATTENTIONS))
@click.option("--stem", type=click.Choice(STEMS))
@click.option("--augment", type=float, help="Scale every augmentation strength (0 disables all).")
@click.option("--class-weighting", type=click.Choice(CLASS_WEIGHTINGS))
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="auto (default): mixed_bfloat16 only on bfloat16 hardware (GPU >= 8.0, AVX512-BF16/AMX CPU).",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    help="mirrored: all visible GPUs; multiworker: the machines in TF_CONFIG (docs/training.md).",
)
@click.option("--seed", type=int)
@click.option("--skip-bad", is_flag=True, default=None, help="Skip unreadable images and bad CSV rows (warn with counts).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config value, e.g. phase2.schedule=plateau.")
@click.option("--restart", is_flag=True, help="Delete the run folder and start over.")
@friendly_errors
def train(phase, config_path, preset, sets, restart, **options) -> None:
    """Train phase 1, phase 2 or both; rerun the same command to resume."""
    from ferkeras.config import load_config, parse_override

    mapping = {
        "data": "data.root",
        "output": "output_dir",
        "image_size": "data.image_size",
        "crop": "data.crop",
        "channels": "data.channels",
        "epochs1": "phase1.epochs",
        "epochs2": "phase2.epochs",
        "batch_size": "batch_size",
        "lr1": "phase1.learning_rate",
        "lr2": "phase2.learning_rate",
        "weights": "model.weights",
        "attention": "model.attention",
        "stem": "model.stem",
        "class_weighting": "class_weighting",
        "precision": "precision",
        "strategy": "strategy",
        "seed": "seed",
        "skip_bad": "data.skip_bad",
    }
    overrides = [parse_override(f"{mapping[k]}={v}") for k, v in options.items() if k in mapping and v is not None]
    overrides += [parse_override(item) for item in sets]
    config = load_config(config_path, preset, overrides)
    if options.get("augment") is not None:
        import dataclasses

        scale = options["augment"]
        for field in dataclasses.fields(config.augment):
            setattr(config.augment, field.name, min(getattr(config.augment, field.name) * scale, 1.0))
    from ferkeras.training.trainer import train as run_training

    run_dir = run_training(config, phase, restart)
    click.echo(f"run folder: {run_dir}")


@main.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--output", required=True, help="Folder to write model.keras and model_card.json into.")
@friendly_errors
def soup(runs, output) -> None:
    """Average the weights of several runs' models (e.g. phase-2 restarts from one phase 1) into one model."""
    from ferkeras.training.soup import make_soup

    target = make_soup([Path(run) for run in runs], Path(output))
    click.echo(
        f"wrote {target} (mean of {len(runs)} models); score it with: ferkeras evaluate --model {target.parent} --update-card"
    )


@main.command()
@click.argument("run")
@click.option("--name", required=True, help="Folder name under --into, e.g. fer2013_resnet18_cbam_small.")
@click.option(
    "--data", default=DEFAULT_DATA, show_default=True, help="FER2013 root: val for evaluation and parity, train for calibration."
)
@click.option("--into", default="saved_models", show_default=True, help="Folder of shipped models.")
@click.option("--onnx/--no-onnx", default=True, show_default=True, help="Also export model.onnx.")
@friendly_errors
def ship(run, name, data, into, onnx) -> None:
    """Copy a finished run or soup into INTO/NAME, evaluate it, export it and time it."""
    from ferkeras.ship import ship as ship_model

    click.echo(f"shipped {ship_model(run, name, data, into, onnx)}")


@main.command()
@click.option(
    "--model",
    multiple=True,
    help="Run folder, model folder, model file (.keras/.tflite/.onnx), shipped model name, or ensemble member folder "
    "(ferkeras members); repeat to score the mean of their probabilities [default: the shipped model].",
)
@click.option("--data", default=DEFAULT_DATA, show_default=True, help="Data root (class folders) or fer2013.csv.")
@click.option("--split", default="val", show_default=True, type=click.Choice(SPLITS))
@click.option(
    "--tta", multiple=True, type=click.Choice(TTA_MODES[1:]), help="Also report test-time augmentation; repeat for both."
)
@click.option(
    "--output",
    help="Folder for metrics.json and PNGs [default: MODEL_DIR/eval_SPLIT; needed for members and ensembles].",
)
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images and bad CSV rows.")
@click.option("--update-card", is_flag=True, help="Store the metrics in the model card.")
@friendly_errors
def evaluate(model, data, split, tta, output, skip_bad, update_card) -> None:
    """Accuracy, per-class metrics, confusion matrices and worst mistakes on a split, of a model or an ensemble."""
    from ferkeras.evaluation.report import evaluate as run_evaluation

    run_evaluation(model, data, split, tta, output, skip_bad, update_card)


@main.command()
@click.argument("model")
@click.option("--output", required=True, help="Member folder (small files: commit it), e.g. teacher/members/NAME.")
@click.option("--data", default=DEFAULT_DATA, show_default=True, help="Data root (class folders) or fer2013.csv.")
@click.option("--split", "splits", multiple=True, type=click.Choice(SPLITS), help="Splits to store [default: val and train].")
@click.option(
    "--view", "views", multiple=True, type=click.Choice(TTA_MODES), help="Test-time views [default: all the model supports]."
)
@friendly_errors
def members(model, output, data, splits, views) -> None:
    """Store MODEL's probabilities on whole splits as an ensemble member (resumable)."""
    from ferkeras.evaluation.members import store_member

    record = store_member(model, data, output, splits or ("val", "train"), views or TTA_MODES)
    click.echo(f"member {output}: {', '.join(sorted(record['files']))}")


@main.command()
@click.argument("member_folders", nargs=-1, required=True)
@click.option("--data", default=DEFAULT_DATA, show_default=True, help="Data root the members were stored from.")
@click.option("--split", default="val", show_default=True, type=click.Choice(SPLITS))
@click.option("--view", default="flip", show_default=True, type=click.Choice(TTA_MODES), help="Which stored view to average.")
@friendly_errors
def ensemble(member_folders, data, split, view) -> None:
    """Score the mean of stored members' probabilities (see ``ferkeras members``)."""
    from ferkeras.evaluation.members import score_ensemble
    from ferkeras.evaluation.metrics import format_report

    click.echo(
        format_report(score_ensemble(member_folders, data, split, view), f"{split}, mean of {len(member_folders)} ({view})")
    )


@main.command()
@click.option("--model", help="Model file, folder or shipped model name [default: the default model].")
@click.option("--data", default=DEFAULT_DATA, show_default=True, help="Data root (class folders) or fer2013.csv.")
@click.option("--split", default="val", show_default=True, type=click.Choice(SPLITS), help="Faces the model did not train on.")
@click.option("--output", help="Folder for calibration.png [default: MODEL_DIR/eval_SPLIT].")
@friendly_errors
def calibrate(model, data, split, output) -> None:
    """Fit the softmax temperature on a held-out split and store it in the model card (all formats use it)."""
    from ferkeras.evaluation.calibrate import calibrate as fit

    record = fit(model, data, split, output)
    click.echo(
        f"temperature {record['temperature']:g}: ECE {record['ece_15_bins']['before']:.4f} -> {record['ece_15_bins']['after']:.4f}, "
        f"NLL {record['nll']['before']:.4f} -> {record['nll']['after']:.4f} (after: two-fold cross-fitted on {split})"
    )


@main.command()
@click.option("--model", help="A .keras file, or a folder holding model.keras [default: the shipped model].")
@click.option("--tflite", is_flag=True, help="Write TFLite model(s).")
@click.option(
    "--quantize",
    multiple=True,
    type=click.Choice(list(TFLITE_FILES)),
    help="TFLite quantization; repeat for several [default: none].",
)
@click.option("--onnx", is_flag=True, help="Write model.onnx (tf2onnx).")
@click.option("--saved-model", is_flag=True, help="Write a TensorFlow SavedModel folder.")
@click.option("--data", help="Faces for calibration (train split) and parity [default: the card's training data].")
@click.option("--parity-split", default="val", show_default=True, type=click.Choice(SPLITS))
@click.option("--parity-samples", default=0, show_default=True, help="Faces used for parity (0: the whole split).")
@click.option(
    "--calibration-samples", type=int, help="Training faces for int8 calibration [default: as the model's card says, else 500]."
)
@click.option(
    "--calibration-trim",
    type=click.FloatRange(0.5, 1.0),
    help="Leave out calibration faces whose activations pass this per-layer quantile (1.0: none) "
    "[default: as the model's card says, else 0.95].",
)
@click.option(
    "--int8-float-ops",
    help="Comma-separated TFLite op types an int8 model keeps in float32 ('' for none) "
    "[default: as the model's card says (its last int8 export, else its config's export section)].",
)
@friendly_errors
def convert(tflite, quantize, int8_float_ops, **options) -> None:
    """Export to TFLite/ONNX/SavedModel beside the model, with a parity check each."""
    from ferkeras.config import parse_float_ops
    from ferkeras.export.workflow import run_conversions

    if not (tflite or options["onnx"] or options["saved_model"] or quantize):
        raise click.UsageError("choose at least one of --tflite, --onnx, --saved-model")
    run_conversions(
        quantizations=quantize or (("none",) if tflite else ()),
        float_ops=None if int8_float_ops is None else parse_float_ops(int8_float_ops, "--int8-float-ops"),
        **options,
    )


@main.command()
@click.option("--source", default="0", show_default=True, help="Camera index, video file, image, image folder or URL.")
@click.option(
    "--model",
    default="auto",
    show_default=True,
    help="Model file, folder, shipped model name, accurate or realtime; auto: the most accurate shipped model that keeps 60 FPS with 3 faces "
    "on one core of this CPU (timed once, then cached).",
)
@click.option("--detector", default=DETECTORS[0], show_default=True, type=click.Choice(DETECTORS))
@click.option("--display/--no-display", default=None, help="Show a window [default: on for cameras].")
@click.option("--output", type=click.Path(dir_okay=False), help="Annotated video (.mp4).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Per-frame CSV (one row per face, or an empty row).")
@click.option("--jsonl", type=click.Path(dir_okay=False), help="Per-frame JSON lines.")
@click.option("--max-frames", type=int, help="Stop after this many frames.")
@click.option(
    "--every", default=1, show_default=True, help="Run detection and the model on every N-th frame; carry results between."
)
@click.option("--smoothing", default=SMOOTHINGS[0], show_default=True, type=click.Choice(SMOOTHINGS))
@click.option("--alpha", default=0.2, show_default=True, help="EMA weight of the newest frame.")
@click.option("--window", default=10, show_default=True, help="Frames in the moving average (--smoothing mean).")
@click.option("--threshold", default=0.4, show_default=True, help="Below this smoothed confidence the label is 'uncertain'.")
@click.option(
    "--hysteresis", default=0.15, show_default=True, help="A label changes only when another class leads it by this much."
)
@click.option("--min-face", default=0, show_default=True, help="Ignore faces smaller than this many pixels.")
@click.option("--padding", default=0.1, show_default=True, help="Enlarge face boxes by this fraction before cropping.")
@click.option("--threads", default=1, show_default=True, help="Threads for the emotion model.")
@click.option(
    "--flip/--no-flip",
    default=False,
    show_default=True,
    help="Average each face with its mirror image: more accurate, twice the emotion-model time.",
)
@click.option(
    "--pipeline/--no-pipeline",
    default=True,
    show_default=True,
    help="Read and detect the next frame in a second thread while this one is classified (same results, faster).",
)
@click.option(
    "--classify-every",
    default=1,
    show_default=True,
    help="Classify a tracked face every N-th frame unless it moved (faster; labels agree less, docs/benchmarks.md).",
)
@friendly_errors
def cam(
    source,
    model,
    detector,
    display,
    output,
    csv_path,
    jsonl,
    max_frames,
    every,
    smoothing,
    alpha,
    window,
    threshold,
    hysteresis,
    min_face,
    padding,
    threads,
    flip,
    pipeline,
    classify_every,
) -> None:
    """Live emotion recognition on a webcam, video, images or stream."""
    from ferkeras.inference.recognizer import Recognizer
    from ferkeras.inference.runner import FrameSource, run

    frames = FrameSource(source)  # a bad source fails before the model loads
    model = _live_model(model, detector, threads)
    recognizer = Recognizer.load(
        model,
        detector=detector,
        min_face=min_face,
        threads=threads,
        smoothing=smoothing,
        alpha=alpha,
        window=window,
        threshold=threshold,
        hysteresis=hysteresis,
        padding=padding,
        flip=flip,
        classify_every=classify_every,
    )
    if display is None:
        display = str(source).isdigit()
    click.echo(f"model: {recognizer.predictor.path} ({recognizer.predictor.format}), detector: {detector}", err=True)
    stats = run(frames, recognizer, output, csv_path, jsonl, display, max_frames, every, pipeline=pipeline)
    if not stats.frames:
        click.echo(f"no frames read from {source}" + ("; no video written" if output else ""), err=True)
    stages = ", ".join(f"{k} {1000 * v / max(stats.frames, 1):.1f}" for k, v in stats.seconds.items())
    click.echo(
        f"{stats.frames} frames, {stats.faces} face detections, {stats.fps:.1f} FPS (ms/frame: {stages})"
        + (f"; stopped by {stats.stopped_by}" if stats.stopped_by else ""),
        err=True,
    )
    if frames.skipped:
        click.echo(f"skipped {len(frames.skipped)} unreadable image(s), first: {frames.skipped[0]}", err=True)
    for path in stats.written:
        click.echo(f"wrote {path}", err=True)


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--data", help="Data root for accuracy (omit to time random faces only).")
@click.option("--split", default="val", show_default=True, type=click.Choice(SPLITS))
@click.option("--threads", default=1, show_default=True, help="Inference threads.")
@click.option("--runs", default=300, show_default=True, help="Timed batch-1 calls per model.")
@click.option("--batch", default=64, show_default=True, help="Batch size for throughput.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the rows as JSON.")
@friendly_errors
def bench(models, data, split, threads, runs, batch, json_path) -> None:
    """Latency, throughput, size and accuracy for model files or folders (one row per file)."""
    from ferkeras.card import read_card
    from ferkeras.inference.bench import benchmark, format_table, model_files
    from ferkeras.io import atomic_write_json, ensure_writable

    files = model_files(models)
    if not files:
        raise click.UsageError("no model files found in " + ", ".join(models))
    # Every input and the output are checked before the first model is timed, which takes minutes.
    for path in files:
        if not path.is_file():
            raise FerKerasError(f"no model file {path}")
        read_card(path)
    if json_path:
        ensure_writable(Path(json_path).parent, "folder of --json")
    rows = []
    for path in files:
        rows.append(benchmark(path, threads, runs, batch, data, split))
        click.echo(f"{path}: {rows[-1]['latency_ms_median']} ms/face", err=True)
    click.echo(format_table(rows))
    if json_path:
        atomic_write_json(json_path, rows)


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--output", required=True, help="Batch folder: one folder per video, summary.csv, report.html.")
@click.option("--fps", default=5.0, show_default=True, help="Frames analysed per second of video time.")
@click.option("--model", default=ACCURATE, show_default=True, help=f"{ACCURATE}: the most accurate shipped model; or as in cam.")
@click.option("--detector", default=DETECTORS[0], show_default=True, type=click.Choice(DETECTORS))
@click.option("--flip/--no-flip", default=True, show_default=True, help="Average each face with its mirror image.")
@click.option("--reid/--no-reid", default=True, show_default=True, help="Give a face that returns within 5 s its old person id.")
@click.option("--workers", default=1, show_default=True, help="Videos analysed in parallel on this machine.")
@click.option("--cluster", metavar="ADDRESS", help="A Dask scheduler (tcp://HOST:8786) whose workers analyse the videos.")
@click.option("--quiet", is_flag=True, help="No progress bars, only log lines.")
@friendly_errors
def analyze(sources, output, fps, model, detector, flip, reid, workers, cluster, quiet) -> None:
    """Emotions over time in video files, folders of videos or lists of paths (docs/analyze.md)."""
    try:
        from ferkeras.analysis.batch import AnalyzeSettings, run_batch, status_counts
        from ferkeras.analysis.layout import REPORT_HTML
    except ImportError as exc:
        raise FerKerasError(
            f"ferkeras analyze needs the [analyze] extra ({exc.name} is missing): pip install 'ferkeras[analyze]'"
        ) from None

    settings = AnalyzeSettings(fps=fps, model=model, detector=detector, flip=flip, reid=reid)
    summary = run_batch(sources, output, settings, workers, cluster, quiet)
    counts = status_counts(summary)
    said = ", ".join(f"{counts[status]} {status}" for status in ("analysed", "done before", "failed"))
    click.echo(f"{said}; report: {Path(output) / REPORT_HTML}", err=True)
    for row in summary:
        if row["status"] == "failed":
            click.echo(f"failed: {row['source']}: {row['error']}", err=True)
    if counts["failed"] and not (counts["analysed"] + counts["done before"]):
        sys.exit(1)


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on; any other than loopback needs --token."
)
@click.option("--port", default=8000, show_default=True, help="TCP port.")
@click.option(
    "--model", default="auto", show_default=True, help="As in cam: a model file, folder or shipped model name, or auto."
)
@click.option("--detector", default=DETECTORS[0], show_default=True, type=click.Choice(DETECTORS))
@click.option("--token", help=f"Bearer token every request must carry (or set {TOKEN_ENV}); required off loopback.")
@click.option(
    "--cors", multiple=True, metavar="ORIGIN", help="Let web pages from ORIGIN call the API (repeatable); off by default."
)
@click.option("--max-mb", default=8.0, show_default=True, help="Largest request body or stream frame, in MB.")
@click.option("--max-pixels", default=ServeSettings.max_pixels, show_default=True, help="Largest image, width x height.")
@click.option("--max-fps", default=ServeSettings.max_fps, show_default=True, help="Frames per second one stream may send.")
@click.option("--max-sessions", default=ServeSettings.max_sessions, show_default=True, help="Concurrent streams.")
@click.option("--engines", type=int, help="Models loaded side by side [default: CPU cores, at most 4].")
@click.option("--smoothing", default=SMOOTHINGS[0], show_default=True, type=click.Choice(SMOOTHINGS), help="Streams' smoothing.")
@click.option("--threshold", default=0.4, show_default=True, help="Below this confidence the label is 'uncertain'.")
@friendly_errors
def serve(
    host, port, model, detector, token, cors, max_mb, max_pixels, max_fps, max_sessions, engines, smoothing, threshold
) -> None:
    """HTTP API, live WebSocket stream and a browser camera page (docs/serve.md)."""
    try:
        import uvicorn

        from ferkeras.serve.app import create_app
        from ferkeras.serve.engines import EnginePool
    except ImportError as exc:
        raise FerKerasError(
            f"ferkeras serve needs the [serve] extra ({exc.name} is missing): pip install 'ferkeras[serve]'"
        ) from None

    extra = {} if engines is None else {"engines": engines}
    settings = ServeSettings(
        host, port, token, tuple(cors), int(max_mb * 1024 * 1024), max_pixels, max_fps, max_sessions, **extra
    )
    model = _live_model(model, detector, 1)
    pool = EnginePool(model, settings.engines, detector=detector, smoothing=smoothing, threshold=threshold)
    click.echo(
        f"model: {pool.predictor.path} ({pool.predictor.format}, version {pool.model_info['version']}), {pool.size} engine(s)",
        err=True,
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"serving http://{shown}:{port}/ (camera page), /docs (API)" + (", token required" if settings.token else ""), err=True
    )
    config = uvicorn.Config(
        create_app(pool, settings), host=host, port=port, ws_max_size=settings.max_bytes, log_level="warning", ws="websockets"
    )
    uvicorn.Server(config).run()


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config whose model to build.")
@click.option("--preset", default="default", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config value, e.g. model.stem=imagenet.")
@click.option("--layers/--no-layers", default=False, help="Print the Keras layer table too.")
@friendly_errors
def summary(config_path, preset, sets, layers) -> None:
    """Build the configured model and print its size and multiply-accumulates."""
    from ferkeras.config import load_config, parse_override

    config = load_config(config_path, preset, [parse_override(item) for item in sets])
    from ferkeras.models import count_macs
    from ferkeras.models.from_config import new_model

    model = new_model(config)
    if layers:
        model.summary(print_fn=click.echo)
    macs = count_macs(model)
    click.echo(
        f"{model.name}: {model.count_params():,} parameters, {macs / 1e6:.1f} M multiply-accumulates "
        f"({2 * macs / 1e6:.1f} MFLOPs) per {config.data.input_size}x{config.data.input_size}x{config.data.channels} face"
    )


if __name__ == "__main__":
    main()
