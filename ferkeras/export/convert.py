"""Convert a ``.keras`` model to TFLite, ONNX or a SavedModel, next to it.

Every format takes the same input (raw 0-255 gray face crops, float32, batch
first, at the card's size) and returns the 7 probabilities in the card's class
order; int8 models keep float32 input and output and quantize inside.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ferkeras.artifacts import ONNX_FILE, TFLITE_FILES
from ferkeras.card import read_card
from ferkeras.config import ExportConfig, parse_float_ops
from ferkeras.errors import FerKerasError
from ferkeras.io import atomic_path

log = logging.getLogger(__name__)
QUANTIZATIONS = tuple(TFLITE_FILES)
# XNNPACK, the CPU kernels LiteRT runs by default, refuses an int8 convolution or
# fully connected layer whose requantization scale (input scale x weight scale /
# output scale) is 256 or more, and with it the whole model (XNNPACK's
# convolution-nhwc.c and fully-connected-nc.c). A CBAM channel-MLP unit whose
# ReLU barely fires on the calibration faces gets such a tiny output scale
# (2.3e4 in one small-stem model); such layers are kept in float32.
XNNPACK_MAX_REQUANTIZATION_SCALE = 256.0
_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _weighted_layers(flatbuffer: bytes):
    """(output tensor name, input, weight and output scales) of each conv / dense op."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Reading tensors needs no allocation, so XNNPACK never sees the graph here.
    interpreter = Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():  # LiteRT has no public op listing
        if op["op_name"] in _WEIGHTED_OPS:
            x, w, y = (tensors[op["inputs"][0]], tensors[op["inputs"][1]], tensors[op["outputs"][0]])
            yield y["name"], *(t["quantization_parameters"]["scales"] for t in (x, w, y))


def xnnpack_refused_layers(flatbuffer: bytes) -> list[str]:
    """Output tensor names of the int8 layers whose requantization scale XNNPACK refuses."""
    return [
        name
        for name, x, w, y in _weighted_layers(flatbuffer)
        if len(x) and len(w) and len(y) and float(np.max(x[0] * w / y[0])) >= XNNPACK_MAX_REQUANTIZATION_SCALE
    ]


def float_layers(flatbuffer: bytes) -> list[str]:
    """Keras names of the conv / dense layers an int8 model computes in float32."""
    return [layer_name(name) for name, x, w, y in _weighted_layers(flatbuffer) if not len(w)]


def layer_name(tensor_name: str) -> str:
    """``model_1/block_1/block_fc1_3/MatMul;...`` -> ``block_fc1``, the Keras layer's name."""
    scopes = tensor_name.split(";")[0].split("/")
    return re.sub(r"_\d+$", "", scopes[-2] if len(scopes) > 1 else scopes[0])


def _load_keras(path: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ferkeras.models.files import load_keras_model

    if path.suffix != ".keras":
        raise FerKerasError(f"convert needs a .keras model, got {path}")
    return load_keras_model(path)


def _input_spec(card: dict):
    import tensorflow as tf

    size, channels = int(card["input"]["size"]), int(card["input"].get("channels", 1))
    return tf.TensorSpec((None, size, size, channels), tf.float32, name="pixels")


def export_saved_model(model_path: Path, output: Path | None = None) -> Path:
    """A TensorFlow SavedModel (serving signature ``serve``) beside the model."""
    card = read_card(model_path)
    model = _load_keras(model_path)
    target = output or model_path.parent / "saved_model"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".saved_model."))
    try:
        model.export(str(tmp / "sm"), format="tf_saved_model", input_signature=[_input_spec(card)], verbose=False)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / "sm", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_tflite(
    model_path: Path,
    quantization: str = "none",
    calibration: np.ndarray | None = None,
    output: Path | None = None,
    float_ops: tuple[str, ...] | None = None,
    saved_model: Path | None = None,
) -> Path:
    """Write a ``.tflite`` file; int8 needs ``calibration`` images (N, S, S, C) float32.

    ``float_ops`` are the TFLite op types (``MUL``, ``MEAN``, ...) an int8 model
    leaves in float32 (None: :class:`~ferkeras.config.ExportConfig`'s default).
    ``saved_model`` is this model's :func:`export_saved_model`, to convert from
    (None: exported here and removed after).
    """
    if float_ops is None:
        float_ops = parse_float_ops(ExportConfig().int8_float_ops)
    if quantization not in QUANTIZATIONS:
        raise FerKerasError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if quantization == "int8" and (calibration is None or not len(calibration)):
        raise FerKerasError("int8 quantization needs calibration images: pass --data ROOT (training faces are sampled)")
    import tensorflow as tf

    # Through a SavedModel: converting a concrete function of a Keras 3 model
    # leaves its variables unfrozen (READ_VARIABLE ops that read zeros).
    workdir = None
    try:
        if saved_model is None:
            workdir = Path(tempfile.mkdtemp(prefix="ferkeras_tflite_"))
            saved_model = export_saved_model(model_path, workdir / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        flatbuffer = _run_converter(converter, quantization, calibration, float_ops)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    target = output or model_path.parent / TFLITE_FILES[quantization]
    with atomic_path(target) as tmp:
        tmp.write_bytes(flatbuffer)
    return target


def _run_converter(converter, quantization: str, calibration: np.ndarray | None, float_ops: tuple[str, ...]) -> bytes:
    import tensorflow as tf

    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        samples = np.asarray(calibration, np.float32)

        def representative():
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

        converter.representative_dataset = representative

        def options(float_nodes):
            return tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=list(float_ops), denylisted_nodes=float_nodes or None
            )

        try:
            with warnings.catch_warnings():
                # The debugger builds a tf.lite.Interpreter internally, which warns
                # that users should move to ai-edge-litert; ours already run there.
                warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
                debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=representative, debug_options=options([])
                )
                quantized = debugger.get_nondebug_quantized_model()
                float_nodes: list[str] = []
                while refused := [n for n in xnnpack_refused_layers(quantized) if n not in float_nodes]:
                    float_nodes += refused
                    debugger.options = options(float_nodes)  # requantizes the calibrated model, no new calibration
                    quantized = debugger.get_nondebug_quantized_model()
            if float_nodes:
                names = ", ".join(layer_name(n) for n in float_nodes)
                log.warning(f"int8: kept in float32, as XNNPACK refuses their requantization scale (>= 256): {names}")
            return quantized
        except Exception as exc:  # the converter raises many types
            raise FerKerasError(f"TFLite int8 conversion failed: {str(exc).splitlines()[0]}") from None
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises many types
        raise FerKerasError(f"TFLite conversion failed: {str(exc).splitlines()[0]}") from None


def convert_onnx(model_path: Path, output: Path | None = None, opset: int = 17) -> Path:
    """Write ``model.onnx`` with tf2onnx."""
    try:
        import tf2onnx
    except ImportError:
        raise FerKerasError("ONNX export needs tf2onnx: pip install 'ferkeras[train]'") from None
    card = read_card(model_path)
    model = _load_keras(model_path)
    target = output or model_path.parent / ONNX_FILE
    with atomic_path(target) as tmp:
        try:
            # from_keras, not from_function: the latter turns the Normalization
            # layer's constants into extra graph inputs.
            tf2onnx.convert.from_keras(model, input_signature=[_input_spec(card)], opset=opset, output_path=str(tmp))
        except Exception as exc:  # tf2onnx raises many types
            raise FerKerasError(f"ONNX conversion failed: {str(exc).splitlines()[0]}") from None
    return target
