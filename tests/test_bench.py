"""A tiny run of the benchmarks (smallest sizes) so the script cannot rot.

Its figures are printed, never asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_tiny_benchmark_runs_and_prints_every_section():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--tiny"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    for heading in ("1. Preview cost", "2. Growth", "3. Detection", "4. Rule cost", "5. Render", "6. Edit cost", "7. Engine preview", "8. Rollback loop",
                    "10. Fleet"):
        assert heading in result.stdout
