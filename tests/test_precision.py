"""precision: auto picks mixed bfloat16 only where the hardware computes in it."""

import logging

import pytest

from ferkeras.config import load_config, parse_override
from ferkeras.errors import FerKerasError
from ferkeras.training.precision import cpu_flags, native_bfloat16, resolve_precision


def test_cpu_flags_of_the_first_cpu(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16"}
    arm = tmp_path / "arm"  # ARM lists "Features"; its bfloat16 is not counted
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(arm) == set()
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(
    "flags, gpus, expected",
    [
        ({"avx2", "fma"}, [], None),
        ({"avx512f", "avx512_bf16"}, [], "CPU avx512_bf16"),
        ({"amx_bf16", "avx512_bf16"}, [], "CPU amx_bf16 avx512_bf16"),
        ({"avx2"}, [(7, 5)], None),
        ({"avx2"}, [(7, 5), (8, 6)], "GPU compute capability >= 8.0"),
    ],
)
def test_native_bfloat16(flags, gpus, expected):
    assert native_bfloat16(flags, gpus) == expected


def test_resolve_precision(caplog):
    assert resolve_precision("auto", None) == "float32"
    assert resolve_precision("auto", "CPU amx_bf16") == "mixed_bfloat16"
    assert resolve_precision("float32", "CPU amx_bf16") == "float32"
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("mixed_bfloat16", None) == "mixed_bfloat16"
    assert "several times slower than float32" in caplog.text and "precision: auto" in caplog.text


def test_precision_is_checked_in_the_config():
    assert load_config().precision == "auto"
    assert load_config(preset="smoke").precision == "float32"
    with pytest.raises(FerKerasError, match="precision='float16' is not one of"):
        load_config(overrides=[parse_override("precision=float16")])
