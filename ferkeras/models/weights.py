"""Import torchvision/timm ResNet18 ImageNet weights (safetensors) into our layers.

We use timm's ``resnet18.tv_in1k`` file: the original torchvision weights in
the safetensors format, which is a plain JSON header plus raw arrays, so it is
read here with numpy alone (no PyTorch, no pickle, no code execution).
"""

from __future__ import annotations

import json
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import keras
import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.io import file_sha256

IMAGENET_URL = "https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors"
IMAGENET_FILENAME = "resnet18_tv_in1k.safetensors"
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}


def cache_dir() -> Path:
    """``$FERKERAS_CACHE`` or ``~/.cache/ferkeras``."""
    return Path(os.environ.get("FERKERAS_CACHE", Path.home() / ".cache" / "ferkeras"))


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read every tensor of a safetensors file into numpy arrays."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        (header_len,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + header_len])
    except (OSError, struct.error, ValueError) as exc:
        raise FerKerasError(f"{path} is not a readable safetensors file ({exc})") from None
    body = memoryview(raw)[8 + header_len :]
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in _DTYPES:
            raise FerKerasError(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
        start, end = meta["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=_DTYPES[meta["dtype"]])
        tensors[name] = array.reshape(meta["shape"]).astype(np.float32)
    return tensors


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray]) -> None:
    """Write float32 arrays as a safetensors file (used by tests and tools)."""
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def torch_name_map(model) -> dict[str, str]:
    """Our layer name -> torchvision parameter prefix, for every conv and BatchNorm."""
    mapping = {"stem_conv": "conv1", "stem_bn": "bn1"}
    for layer in model.layers:
        parts = layer.name.split("_")
        if not layer.name.startswith("stack") or len(parts) < 3:
            continue
        stack, block = int(parts[0][5:]), int(parts[1][5:]) - 1
        prefix = f"layer{stack}.{block}"
        suffix = "_".join(parts[2:])
        target = {
            "conv1": "conv1",
            "bn1": "bn1",
            "conv2": "conv2",
            "bn2": "bn2",
            "shortcut_conv": "downsample.0",
            "shortcut_bn": "downsample.1",
        }.get(suffix)
        if target:
            mapping[layer.name] = f"{prefix}.{target}"
    return mapping


def assign_torch_weights(model, tensors: dict[str, np.ndarray], source: str = "weights") -> int:
    """Copy torchvision-named arrays into the model; returns the number of layers set.

    Conv kernels go from (out, in, kh, kw) to (kh, kw, in, out). A 1-channel model
    gets the stem kernel summed over RGB (gray replicated to RGB gives the same
    response).
    """
    count = 0
    for layer_name, prefix in torch_name_map(model).items():
        layer = model.get_layer(layer_name)
        try:
            if isinstance(layer, keras.layers.Conv2D):
                kernel = tensors[f"{prefix}.weight"].transpose(2, 3, 1, 0)
                if layer_name == "stem_conv" and layer.kernel.shape[2] == 1:
                    kernel = kernel.sum(axis=2, keepdims=True)
                layer.set_weights([kernel])
            else:
                layer.set_weights([tensors[f"{prefix}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")])
        except KeyError as exc:
            raise FerKerasError(f"{source}: missing tensor {exc.args[0]} for layer {layer_name}") from None
        except ValueError as exc:
            raise FerKerasError(f"{source}: shape mismatch for layer {layer_name}: {exc}") from None
        count += 1
    return count


def fetch_imagenet_weights(url: str | None = None) -> Path:
    """Return the cached ImageNet weights file, downloading it once if needed.

    The first download records its SHA-256 beside the file; every later use checks
    it, so a truncated or altered cache is caught. Offline, the error says which
    file to fetch and where to put it.
    """
    url = url or IMAGENET_URL
    target = cache_dir() / IMAGENET_FILENAME
    checksum_file = target.with_suffix(".sha256")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            partial.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise FerKerasError(
                f"cannot download ImageNet weights ({reason}); fetch {url} "
                f"and save it as {target} (or pass weights=/path/to/file.safetensors)"
            ) from None
        os.replace(partial, target)
        checksum_file.write_text(file_sha256(target) + "\n")
    elif checksum_file.exists() and checksum_file.read_text().strip() != file_sha256(target):
        raise FerKerasError(f"{target} does not match its recorded checksum {checksum_file}; delete both and retry")
    return target


def load_imagenet_weights(model, weights: str) -> None:
    """Load ``"imagenet"`` (cached download) or a safetensors path into ``model``."""
    path = fetch_imagenet_weights() if weights == "imagenet" else Path(weights)
    if not path.exists():
        raise FerKerasError(f"weights file not found: {path}")
    assign_torch_weights(model, read_safetensors(path), source=str(path))
