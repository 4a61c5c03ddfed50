"""benchmarks/gpu.py on CPU (``--small``): every model stage alone and the whole pipeline, as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from echoforge.registry import tts_backends

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--small",
                           "--gpus", "4", "--json", str(out)], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["facts"]["device"] == "cpu" and report["facts"]["device_name"]
    stages = {s["stage"]: s for s in report["stages"]}
    expected = ["piper", "whisper_gate", "units", "ctc_aligner", "pipeline"]
    assert list(stages) == ["kokoro", *expected]
    if "kokoro" in tts_backends.names():
        expected.insert(0, "kokoro")
    else:
        assert "kokoro" in stages["kokoro"]["skipped"]
    for name in expected:
        s = stages[name]
        assert "error" not in s, s
        assert s["audio_s"] > 0 and s["seconds"] > 0 and s["rate"] > 0
        # hours for 6,000 h of speech on 4 workers at that rate
        assert abs(s["projected_hours"] - 6000 / (s["rate"] * 4)) <= 0.05 + 0.001 * s["projected_hours"]
    assert stages["pipeline"]["rows"] >= 1
    assert "| pipeline |" in done.stdout
