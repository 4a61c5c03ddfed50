"""DNSMOS (Reddy et al. 2022): how speech sounds, on the ITU-T P.835 scales (SIG: the speech
itself, BAK: the background, OVRL: overall) and P.808 (overall MOS), each 1..5.

The ONNX models are the ones the ``speechmos`` wheel ships (``dnsmos_models/sig_bak_ovr.onnx``
and ``model_v8.onnx``), run through onnxruntime; only the files are used, not ``speechmos``'
Python code (which imports librosa). The front end follows its ``dnsmos.py``: 16 kHz audio, a
clip shorter than 9.01 s repeated until it is that long, 9.01 s windows (every second in the
reference; by default here the fewest that cover the clip, which costs a ninth), the P.835 model on the raw window and its outputs through the published
polynomial calibration, the P.808 model on a 120-band log-mel spectrogram of the window
(librosa's ``melspectrogram`` and ``power_to_db(ref=max)``, re-implemented here in single
precision with scipy's FFT);
each figure is the mean over the windows.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from echoforge.audio import resample
from echoforge.errors import EchoforgeError
from echoforge.hashing import sha256_file

RATE = 16_000
WINDOW_S = 9.01
WINDOW = int(WINDOW_S * RATE)  # 144,160 samples
N_FFT = 321
HOP = 160
N_MELS = 120
FIGURES = ("sig", "bak", "ovrl", "p808")

# The P.835 calibration of speechmos/DNSMOS (non-personalised models): raw model output → MOS.
_P835 = {"sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
         "bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
         "ovrl": np.poly1d([-0.06766283, 1.11546468, 0.04602535])}


def model_dir() -> Path:
    """The folder of DNSMOS models inside the installed ``speechmos`` package (not imported)."""
    from importlib.util import find_spec

    spec = find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise EchoforgeError("DNSMOS needs the 'speechmos' package (its model files): pip install speechmos")
    return Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models"


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log = hz >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) Slaney-normalised triangular filters, as ``librosa.filters.mel``."""
    fft_freqs = np.fft.rfftfreq(N_FFT, 1.0 / RATE)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]


@lru_cache(maxsize=1)
def _mel_filters32() -> np.ndarray:
    return mel_filters().T.astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)  # periodic, as scipy's get_window


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(frames, 120) P.808 input: centred STFT (zero padding), power mel, dB relative to the
    maximum with an 80 dB floor, then ``(dB + 40) / 40``."""
    from scipy import fft  # in single precision (numpy's FFT of this odd size takes 2.4 times as long)

    padded = np.pad(audio.astype(np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    spectrum = fft.rfft(frames * _hann(), axis=1, workers=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    mel = power @ _mel_filters32()
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db -= 10.0 * np.log10(max(float(mel.max()), 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


def windows(audio: np.ndarray, hop_s: float | None) -> list[np.ndarray]:
    """The 9.01 s windows DNSMOS scores, of the clip repeated until it is that long: with
    ``hop_s``, one every ``hop_s`` seconds as the reference counts them (while a window ends by
    the last whole second); without, the fewest that cover the clip, spaced evenly."""
    audio = np.asarray(audio, dtype=np.float32)
    if not len(audio):
        audio = np.zeros(1, dtype=np.float32)
    count = -(-len(audio) // WINDOW)  # windows that cover the clip itself
    while len(audio) < WINDOW:
        audio = np.concatenate([audio, audio])
    if hop_s is not None:
        count = int((np.floor(len(audio) / RATE) - WINDOW_S) / hop_s) + 1
        starts = [int(i * hop_s * RATE) for i in range(count)]
    else:
        starts = np.linspace(0, len(audio) - WINDOW, count).round().astype(int).tolist() if count > 1 else [0]
    return [audio[s: s + WINDOW] for s in starts]


class DNSMOS:
    """Scores clips with the two DNSMOS models; one onnxruntime thread, deterministic."""

    def __init__(self, hop_s: float | None = None, device: str = "cpu", threads: int = 1):
        self.hop_s, self.device, self.threads = hop_s, device, threads
        self._sessions = None

    def setup(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        providers = (["CUDAExecutionProvider"] if self.device == "cuda" else []) + ["CPUExecutionProvider"]
        folder = model_dir()
        self._sessions = tuple(ort.InferenceSession(str(folder / name), sess_options=opts, providers=providers)
                               for name in ("sig_bak_ovr.onnx", "model_v8.onnx"))

    def identity(self) -> dict[str, str]:
        folder = model_dir()
        sums = "+".join(sha256_file(folder / n)[:12] for n in ("sig_bak_ovr.onnx", "model_v8.onnx"))
        return {"dnsmos": f"speechmos dnsmos_models sig_bak_ovr+model_v8 (sha256 {sums})"}

    def score(self, audio: np.ndarray, sample_rate: int) -> dict[str, float]:
        """``sig``, ``bak``, ``ovrl`` (P.835) and ``p808`` of one clip, rounded to 4 decimals."""
        p835, p808 = self._sessions
        segs = windows(resample(audio, sample_rate, RATE), self.hop_s)
        raw = np.stack([p835.run(None, {"input_1": s[None, :]})[0][0] for s in segs])
        p808s = [float(p808.run(None, {"input_1": log_mel(s[:-HOP])[None]})[0][0][0]) for s in segs]
        out = {name: float(np.mean(_P835[name](raw[:, i]))) for i, name in enumerate(("sig", "bak", "ovrl"))}
        out["p808"] = float(np.mean(p808s))
        return {k: round(v, 4) for k, v in out.items()}
