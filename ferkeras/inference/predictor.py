"""One interface for every model format: ``Predictor.load(path).predict(faces)``.

``.keras`` runs through Keras (TensorFlow), ``.tflite`` through ``ai-edge-litert``
and ``.onnx`` through onnxruntime; all read the model card beside the file, take
the same face crops and return probabilities in the card's class order.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ferkeras.artifacts import FORMATS, resolve_model_file
from ferkeras.calibration import apply_temperature
from ferkeras.card import card_path, read_card
from ferkeras.errors import FerKerasError
from ferkeras.inference.preprocess import prepare_faces
from ferkeras.labels import CLASS_NAMES

log = logging.getLogger(__name__)


class _KerasBackend:
    def __init__(self, path: Path, threads: int | None):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        from ferkeras.models.files import load_keras_model

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass  # TensorFlow already started with its own thread pools

        self.model = load_keras_model(path)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x), np.float32)


class _LiteRTBackend:
    def __init__(self, path: Path, threads: int | None):
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise FerKerasError("running .tflite models needs ai-edge-litert: pip install ai-edge-litert") from None

        def open_interpreter(**options):
            try:
                interpreter = Interpreter(model_path=str(path), num_threads=threads, **options)
                interpreter.allocate_tensors()
                # XNNPACK builds its runtime at allocation, or at the first run
                # when the graph has dynamic shapes: run once so a refusal shows here.
                source = interpreter.get_input_details()[0]
                interpreter.set_tensor(source["index"], np.zeros(source["shape"], source["dtype"]))
                interpreter.invoke()
                return interpreter
            except (ValueError, RuntimeError) as exc:
                raise FerKerasError(f"cannot load TFLite model {path}: {str(exc).splitlines()[0]}") from None

        try:
            self.interpreter = open_interpreter()
        except FerKerasError as exc:
            if "XNNPACK" not in str(exc):
                raise
            # XNNPACK refuses an int8 layer whose requantization scale is >= 256
            # (ferkeras convert keeps such layers in float; other converters may
            # not); the built-in kernels still run the model, several times slower.
            self.interpreter = open_interpreter(experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            reason = str(exc).removeprefix(f"cannot load TFLite model {path}: ")
            log.warning(f"{path}: XNNPACK cannot run this model ({reason}); using the slower built-in kernels")
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            shape = list(self.input["shape"])
            shape[0] = batch
            self.interpreter.resize_tensor_input(self.input["index"], shape)
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self._resize(len(x))
        dtype = self.input["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], x.astype(dtype))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] in (np.int8, np.uint8):
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


class _OnnxBackend:
    def __init__(self, path: Path, threads: int | None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise FerKerasError("running .onnx models needs onnxruntime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FerKerasError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: x.astype(np.float32)})[0], np.float32)


class _SavedModelBackend:
    def __init__(self, path: Path):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self.tf = tf
        self.serve = tf.saved_model.load(str(path)).signatures["serve"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outputs = self.serve(self.tf.constant(x))
        return np.asarray(next(iter(outputs.values())), np.float32)


class Predictor:
    """Emotion probabilities for face crops, from any exported format.

    Use :meth:`load`; then :meth:`predict` takes gray or BGR face crops of any
    size (a list, or an (N, H, W[, C]) array) and returns (N, 7) probabilities
    in the order of :attr:`class_names`, calibrated by the card's temperature
    where ``ferkeras calibrate`` fitted one (set :attr:`temperature` to 1 for the
    model's own).
    """

    def __init__(self, path: Path, card: dict, backend):
        self.path = path
        self.card = card
        self.format = FORMATS.get(path.suffix.lower(), "saved_model")
        self._backend = backend
        try:
            self.class_names: list[str] = list(card["class_names"])
            self.input_size = int(card["input"]["size"])
            self.channels = int(card["input"].get("channels", 1))
            prep = card.get("preprocessing", {})
            self.face_resize = int(prep.get("face_resize", self.input_size))
            self.crop = int(prep.get("center_crop", 0) or 0)
            #: softmax temperature fitted by ``ferkeras calibrate`` (1: the model's own probabilities)
            self.temperature = float(card.get("calibration", {}).get("temperature", 1.0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FerKerasError(f"{card_path(path)}: input size, channels or preprocessing unreadable ({exc!r})") from None
        self._check_card()

    def _check_card(self) -> None:
        """Run one blank face through the model: the card must describe the model's input and output.

        A card that lists other classes than the model outputs, or another input
        size, would otherwise give CSV rows wider than their header or wrong metrics.
        """
        where = card_path(self.path)
        names = self.class_names
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise FerKerasError(f"{where}: class_names must be distinct non-empty names, got {names}")
        if self.crop and self.crop > self.face_resize or (self.crop or self.face_resize) != self.input_size:
            raise FerKerasError(
                f"{where}: input size {self.input_size} does not match preprocessing "
                f"(face_resize {self.face_resize}, center_crop {self.crop})"
            )
        blank = np.full((1, self.input_size, self.input_size, self.channels), 128.0, np.float32)
        try:
            output = np.asarray(self._backend(blank))
        except FerKerasError:
            raise
        except Exception as exc:  # each runtime raises its own types for a shape mismatch
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise FerKerasError(
                f"{self.path} does not take the input its card {where} describes "
                f"({self.input_size}x{self.input_size}x{self.channels}): {first}"
            ) from None
        if output.shape != (1, len(names)):
            raise FerKerasError(
                f"{where} lists {len(names)} classes but {self.path} outputs shape {output.shape[1:]}: "
                "the card does not belong to this model"
            )

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> Predictor:
        """Load a ``.keras``/``.tflite``/``.onnx`` file or a model folder, with its card."""
        path = Path(path)
        if path.is_dir() and (path / "saved_model.pb").is_file():
            return cls(path, read_card(path.parent), _SavedModelBackend(path))
        path = resolve_model_file(path)
        card = read_card(path)
        fmt = FORMATS[path.suffix.lower()]
        if fmt == "keras":
            backend = _KerasBackend(path, threads)
        elif fmt == "tflite":
            backend = _LiteRTBackend(path, threads)
        else:
            backend = _OnnxBackend(path, threads)
        return cls(path, card, backend)

    def require_fer_classes(self) -> None:
        """Refuse to score this model against FER2013 labels unless it predicts :data:`CLASS_NAMES` in that order."""
        if self.class_names != list(CLASS_NAMES):
            raise FerKerasError(
                f"{self.path} predicts {', '.join(self.class_names)}; scoring on FER2013 labels needs "
                f"{', '.join(CLASS_NAMES)} in that order"
            )

    def prepare(self, faces) -> np.ndarray:
        """Face crops -> the float32 model input batch."""
        return prepare_faces(faces, self.face_resize, self.crop, self.channels)

    def predict_prepared(self, x: np.ndarray, batch_size: int = 256, flip: bool = False) -> np.ndarray:
        """Run a prepared float32 (N, S, S, C) input, ``batch_size`` faces per call.

        ``flip`` averages each face with its mirror image (the model was trained
        with flips): +0.2 to +0.7 pp on FER2013 val for the shipped models (README,
        "Models and results"), for twice the model time.
        """
        x = np.ascontiguousarray(x, np.float32)
        if not len(x):
            return np.zeros((0, len(self.class_names)), np.float32)
        if flip:
            # One call on the stacked batch: a small batch costs less than two calls.
            both = self.predict_prepared(np.concatenate([x, x[:, :, ::-1]]), batch_size)
            return (both[: len(x)] + both[len(x) :]) / 2
        if len(x) <= batch_size:
            return apply_temperature(self._backend(x), self.temperature)
        chunks = [self._backend(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return apply_temperature(np.concatenate(chunks), self.temperature)

    def predict(self, faces, batch_size: int = 256, flip: bool = False) -> np.ndarray:
        """(N, 7) probabilities for ``faces`` (gray/BGR crops of any size); ``flip``: see :meth:`predict_prepared`."""
        if isinstance(faces, np.ndarray) and faces.ndim <= 2:
            faces = [faces]  # one gray face
        elif isinstance(faces, (str, bytes)) or not hasattr(faces, "__iter__"):
            raise FerKerasError(f"faces must be a list of image arrays or an (N, H, W[, C]) array, got {type(faces).__name__}")
        faces = list(faces)
        chunks = [
            self.predict_prepared(self.prepare(faces[i : i + batch_size]), flip=flip) for i in range(0, len(faces), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.class_names)), np.float32)
