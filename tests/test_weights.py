"""ImageNet import: a random torchvision-format file proves the name and layout mapping."""

import keras
import numpy as np
import pytest

from ferkeras.errors import FerKerasError
from ferkeras.models import build_model
from ferkeras.models import weights as weights_mod
from ferkeras.models.weights import read_safetensors, torch_name_map, write_safetensors


def torchvision_resnet18_tensors(seed=0) -> dict[str, np.ndarray]:
    """Random arrays under torchvision's resnet18 names and shapes."""
    rng = np.random.default_rng(seed)
    tensors = {}

    def conv(name, cout, cin, k):
        tensors[f"{name}.weight"] = rng.normal(0, (cin * k * k) ** -0.5, (cout, cin, k, k)).astype(np.float32)

    def bn(name, c):
        tensors[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        tensors[f"{name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        tensors[f"{name}.running_mean"] = rng.normal(0, 0.2, c).astype(np.float32)
        tensors[f"{name}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
        tensors[f"{name}.num_batches_tracked"] = np.zeros((), np.float32)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for stack, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{stack}.{block}"
            conv(f"{prefix}.conv1", cout, cin if block == 0 else cout, 3)
            bn(f"{prefix}.bn1", cout)
            conv(f"{prefix}.conv2", cout, cout, 3)
            bn(f"{prefix}.bn2", cout)
            if block == 0 and stack > 1:
                conv(f"{prefix}.downsample.0", cout, cin, 1)
                bn(f"{prefix}.downsample.1", cout)
        cin = cout
    tensors["fc.weight"] = rng.normal(size=(1000, 512)).astype(np.float32)
    tensors["fc.bias"] = np.zeros(1000, np.float32)
    return tensors


def torch_conv2d(x, w, stride, pad):
    """PyTorch's Conv2d (NCHW input, OIHW weight), in numpy."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, height, width = x.shape
    _, _, kh, kw = w.shape
    oh, ow = (height - kh) // stride + 1, (width - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "resnet18.safetensors"
    write_safetensors(path, torchvision_resnet18_tensors())
    return path


def test_safetensors_round_trip(weights_file):
    tensors = read_safetensors(weights_file)
    reference = torchvision_resnet18_tensors()
    assert set(tensors) == set(reference)
    np.testing.assert_array_equal(tensors["layer3.0.downsample.0.weight"], reference["layer3.0.downsample.0.weight"])


@pytest.mark.parametrize("channels", [3, 1])
def test_every_imported_layer_matches_pytorch_reference(weights_file, channels):
    model = build_model(64, channels, stem="imagenet", weights=str(weights_file))
    tensors = read_safetensors(weights_file)
    rng = np.random.default_rng(1)
    mapping = torch_name_map(model)
    assert len(mapping) == 2 + 4 * 2 * 4 + 3 * 2  # stem conv+bn, 4 per block, 3 downsamples
    for name, prefix in mapping.items():
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.Conv2D):
            w = tensors[f"{prefix}.weight"]
            stride = layer.strides[0]
            x = rng.normal(size=(2, 9, 9, layer.kernel.shape[2])).astype(np.float32)
            padded = model.get_layer(f"{name}_pad")(x) if stride > 1 and w.shape[-1] > 1 else x
            ours = np.asarray(layer(padded))
            x_nchw = x.transpose(0, 3, 1, 2)
            if name == "stem_conv" and channels == 1:
                x_nchw = np.repeat(x_nchw, 3, axis=1)  # gray replicated to RGB
            reference = torch_conv2d(x_nchw, w, stride, w.shape[-1] // 2).transpose(0, 2, 3, 1)
        else:
            cin = layer.gamma.shape[0]
            x = rng.normal(size=(2, 3, 3, cin)).astype(np.float32)
            ours = np.asarray(layer(x, training=False))
            g, b, m, v = (tensors[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
            reference = (x - m) / np.sqrt(v + 1e-5) * g + b
        np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=1e-5, err_msg=name)


def test_cached_imagenet_file_is_used_and_checked(weights_file, tmp_path, monkeypatch):
    monkeypatch.setenv("FERKERAS_CACHE", str(tmp_path))
    monkeypatch.setattr(weights_mod, "IMAGENET_URL", (tmp_path / "nowhere").as_uri())
    with pytest.raises(FerKerasError):
        weights_mod.fetch_imagenet_weights()
    monkeypatch.setattr(weights_mod, "IMAGENET_URL", weights_file.as_uri())
    path = weights_mod.fetch_imagenet_weights()  # "downloads" through urllib from a file URL
    assert path == tmp_path / weights_mod.IMAGENET_FILENAME
    assert path.with_suffix(".sha256").read_text().strip()
    model = build_model(64, 3, stem="imagenet", weights="imagenet")
    np.testing.assert_allclose(
        model.get_layer("stem_bn").moving_variance.numpy(), read_safetensors(weights_file)["bn1.running_var"]
    )
    path.write_bytes(path.read_bytes()[:-4] + b"\1\2\3\4")
    with pytest.raises(FerKerasError, match="does not match its recorded checksum"):
        weights_mod.fetch_imagenet_weights()


def test_offline_error_is_one_readable_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FERKERAS_CACHE", str(tmp_path))
    monkeypatch.setattr(weights_mod, "IMAGENET_URL", "http://127.0.0.1:9/resnet18.safetensors")
    with pytest.raises(FerKerasError) as error:
        build_model(64, stem="imagenet", weights="imagenet")
    message = str(error.value)
    assert "\n" not in message
    assert "cannot download ImageNet weights" in message
    assert "http://127.0.0.1:9/resnet18.safetensors" in message
    assert str(tmp_path / weights_mod.IMAGENET_FILENAME) in message
    assert not list(tmp_path.glob("*.part"))


def test_wrong_file_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    with pytest.raises(FerKerasError, match="not a readable safetensors file"):
        build_model(64, stem="imagenet", weights=str(bad))
    partial = tmp_path / "partial.safetensors"
    tensors = torchvision_resnet18_tensors()
    del tensors["layer2.1.bn2.running_var"]
    write_safetensors(partial, tensors)
    with pytest.raises(FerKerasError, match="missing tensor layer2.1.bn2.running_var for layer stack2_block2_bn2"):
        build_model(64, stem="imagenet", weights=str(partial))
    with pytest.raises(FerKerasError, match="weights file not found"):
        build_model(64, stem="imagenet", weights=str(tmp_path / "none.safetensors"))
