"""scripts/avx2_only.sh: libraries in the wrapped process see an AVX2-only CPU."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json
try:
    from numpy._core._multiarray_umath import __cpu_features__ as seen
except ImportError:  # numpy 1.x
    from numpy.core._multiarray_umath import __cpu_features__ as seen
from ferkeras.inference.auto import cpu_identity
print(json.dumps({"seen": {k: seen[k] for k in ("AVX2", "FMA3", "AVX512F", "AVX512VNNI")}, "cpu": cpu_identity()}))
"""


def probe(*wrapper):
    # faulthandler installs its own SIGSEGV handler, which the CPUID trap must survive
    command = [*wrapper, sys.executable, "-X", "faulthandler", "-c", PROBE]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(
    shutil.which("gcc") is None or "cpuid_fault" not in Path("/proc/cpuinfo").read_text(),
    reason="needs gcc and Linux CPUID faulting",
)
def test_avx2_only_hides_avx512_and_vnni_and_keeps_avx2():
    host, masked = probe(), probe(str(REPO / "scripts" / "avx2_only.sh"))
    assert masked["seen"]["AVX512F"] is False and masked["seen"]["AVX512VNNI"] is False
    assert masked["seen"]["AVX2"] == host["seen"]["AVX2"] and masked["seen"]["FMA3"] == host["seen"]["FMA3"]
    # benchmark tables and `--model auto`'s timing cache tell the two apart
    assert "AVX2 kernels" in masked["cpu"]["model"] and masked["cpu"]["digest"] != host["cpu"]["digest"]
    assert not [flag for flag in masked["cpu"]["simd"] if flag.startswith(("avx512", "avx_vnni", "amx"))]
