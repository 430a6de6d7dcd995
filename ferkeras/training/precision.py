"""Which precision to train in on this machine.

Mixed bfloat16 pays only where the hardware computes in bfloat16: on a CPU
without AVX512-BF16 or AMX the conversions are emulated, and the shipped
recipe's train step ran 5x slower than in float32 (13 against 68 img/s on an
AVX2-only AMD EPYC; docs/benchmarks.md). ``precision: auto`` picks for the
machine the run starts on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

log = logging.getLogger(__name__)

# /proc/cpuinfo flags of x86 CPUs that compute in bfloat16 (AVX512-BF16: Cooper Lake,
# Zen 4 and later; AMX: Sapphire Rapids and later)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first x86 CPU's feature flags; empty where ``cpuinfo`` is missing (macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def native_bfloat16(flags: set[str] | None = None, gpu_capabilities: list[tuple[int, int]] | None = None) -> str | None:
    """What computes in bfloat16 here (e.g. ``"CPU amx_bf16"``), or None.

    A GPU counts from compute capability 8.0 (Ampere). The arguments default to
    this machine's CPU flags and GPUs.
    """
    if gpu_capabilities is None:
        gpu_capabilities = [
            tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    if any(capability >= (8, 0) for capability in gpu_capabilities):
        return "GPU compute capability >= 8.0"
    found = sorted((cpu_flags() if flags is None else flags) & set(BF16_CPU_FLAGS))
    return f"CPU {' '.join(found)}" if found else None


def resolve_precision(requested: str, native: str | None) -> str:
    """The Keras dtype policy for ``requested`` given ``native_bfloat16()``.

    ``auto`` becomes mixed_bfloat16 with native support, else float32. An explicit
    mixed_bfloat16 is kept, with a warning where it will be slow.
    """
    if requested == "auto":
        return "mixed_bfloat16" if native else "float32"
    if requested == "mixed_bfloat16" and not native:
        log.warning(
            "precision mixed_bfloat16: this machine has no bfloat16 hardware (no GPU >= 8.0, "
            "no CPU flag %s), so training runs several times slower than float32; "
            "set precision: auto or float32",
            " or ".join(BF16_CPU_FLAGS),
        )
    return requested
