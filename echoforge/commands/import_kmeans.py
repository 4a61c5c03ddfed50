"""Import a published fairseq/joblib k-means quantiser into the plain ``.npy`` codebook format.

fairseq's HuBERT k-means files (such as the km1000 quantiser of the EchoX unit vocoder) are
scikit-learn ``MiniBatchKMeans``/``KMeans`` objects written by ``joblib.dump``: a pickle whose
arrays follow it in joblib's own wrapper format. A pickle can run any code when loaded, so the
file is read only if its sha256 equals the one the user pins, and through an unpickler that
resolves nothing but NumPy's array reconstruction, joblib's array wrapper and the two k-means
classes, which it replaces by an inert record of their attributes: no scikit-learn code runs.
Arrays of Python objects are refused.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np

from echoforge.backends.units.base import KMeansCodebook
from echoforge.errors import ConfigError
from echoforge.hashing import sha256_file

_KMEANS_CLASSES = {
    (module, cls)
    for module in ("sklearn.cluster._kmeans", "sklearn.cluster.k_means_")
    for cls in ("KMeans", "MiniBatchKMeans")
}
_NUMPY_GLOBALS = {
    (f"numpy.{core}.{module}", name)
    for core in ("core", "_core")
    for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class UnsafePickle(ConfigError):
    """The file holds something other than a k-means quantiser."""


class KMeansState:
    """The attributes of an unpickled k-means estimator, without the estimator."""

    sklearn_class = ""


def _state_class(name: str) -> type:
    return type(name, (KMeansState,), {"sklearn_class": name})


def _restricted_unpickler():
    """joblib's unpickler (it reads the arrays that follow their wrappers), restricted."""
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    states = {key: _state_class(key[1]) for key in _KMEANS_CLASSES}

    class RestrictedUnpickler(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, name: str):
            if (module, name) in states:
                return states[(module, name)]
            if (module, name) in _NUMPY_GLOBALS or (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                return super().find_class(module, name)
            raise UnsafePickle(f"refused to load {module}.{name}: a k-means file holds only scikit-learn "
                               "k-means and NumPy arrays")

        def load_build(self):
            target, state = self.stack[-2], self.stack[-1]
            if isinstance(target, NumpyArrayWrapper):
                dtype = state.get("dtype") if isinstance(state, dict) else None
                if not isinstance(dtype, np.dtype) or dtype.hasobject:
                    raise UnsafePickle("refused an array of Python objects (or without a dtype)")
            elif not isinstance(target, KMeansState) and not isinstance(target, np.dtype | np.ndarray):
                raise UnsafePickle(f"refused to set the state of a {type(target).__name__}")
            NumpyUnpickler.load_build(self)

        dispatch[pickle.BUILD[0]] = load_build

    return RestrictedUnpickler


def read_kmeans(path: str | Path, sha256: str) -> KMeansState:
    """The attributes of the k-means estimator in a joblib/pickle file with this sha256."""
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    p = Path(path)
    if not re.fullmatch(r"[0-9a-f]{64}", sha256.lower()):
        raise ConfigError("give the file's full sha256 (64 hex digits) to pin it")
    if not p.is_file():
        raise ConfigError(f"k-means file not found: {p}")
    actual = sha256_file(p)
    if actual != sha256.lower():
        raise ConfigError(f"{p.name} has sha256 {actual}, not the pinned {sha256.lower()}: refusing to load it")
    unpickler_class = _restricted_unpickler()
    with open(p, "rb") as f, _validate_fileobject_and_memmap(f, str(p), None) as opened:
        fobj = opened[0] if isinstance(opened, tuple) else opened
        try:
            obj = unpickler_class(str(p), fobj, True).load()
        except UnsafePickle:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways
            raise ConfigError(f"{p.name} is not a readable joblib/pickle k-means file ({type(exc).__name__}: "
                              f"{exc})") from None
    if not isinstance(obj, KMeansState):
        raise UnsafePickle(f"{p.name} holds a {type(obj).__name__}, not a scikit-learn k-means estimator")
    return obj


def import_kmeans(path: str | Path, sha256: str, *, vocoder: str | None = None, layer: int | None = None,
                  model: str | None = None) -> KMeansCodebook:
    """A plain-array codebook from a pinned fairseq/joblib k-means file (centres as fitted)."""
    state = read_kmeans(path, sha256)
    centres = getattr(state, "cluster_centers_", None)
    if not isinstance(centres, np.ndarray) or centres.ndim != 2 or centres.dtype.kind != "f":
        raise ConfigError(f"{Path(path).name}: the estimator has no fitted float (k, dim) cluster_centers_")
    if not np.isfinite(centres).all():
        raise ConfigError(f"{Path(path).name}: cluster_centers_ holds non-finite values")
    provenance = {
        "tokenizer": "hubert-kmeans",
        "k": int(centres.shape[0]),
        "dim": int(centres.shape[1]),
        "imported_from": Path(path).name,
        "imported_sha256": sha256.lower(),
        "sklearn_class": state.sklearn_class,
        "sklearn_version": str(getattr(state, "_sklearn_version", "")),
        **({"vocoder": vocoder} if vocoder else {}),
        **({"layer": layer} if layer else {}),
        **({"model": model} if model else {}),
        "command": f"echoforge import-kmeans {Path(path).name} --sha256 {sha256.lower()}"
                   + (f" --vocoder {vocoder}" if vocoder else "") + (f" --layer {layer}" if layer else ""),
    }
    return KMeansCodebook(centres.astype(np.float32), provenance, "")
