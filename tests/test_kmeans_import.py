"""Importing fairseq/joblib k-means files: real joblib/scikit-learn files, and malicious ones."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans

from echoforge.backends.units.base import KMeansCodebook
from echoforge.commands.import_kmeans import UnsafePickle, import_kmeans
from echoforge.errors import ConfigError
from echoforge.hashing import sha256_file

DATA = np.random.default_rng(0).standard_normal((400, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    return MiniBatchKMeans(n_clusters=12, random_state=0, n_init=1, batch_size=64).fit(DATA)


@pytest.mark.parametrize("compress", [0, 3])
def test_a_joblib_file_imports_to_the_same_centres(fitted, tmp_path, compress):
    path = tmp_path / "km12.bin"
    joblib.dump(fitted, path, compress=compress)
    codebook = import_kmeans(path, sha256_file(path), vocoder="unit_hifigan_km12", layer=11)
    np.testing.assert_array_equal(codebook.centroids, fitted.cluster_centers_.astype(np.float32))
    np.testing.assert_array_equal(codebook.assign(DATA), fitted.predict(DATA))
    p = codebook.provenance
    assert (p["k"], p["dim"], p["sklearn_class"], p["vocoder"], p["layer"]) == (12, 6, "MiniBatchKMeans",
                                                                              "unit_hifigan_km12", 11)
    out = tmp_path / "km12.npy"
    codebook.save(out)
    loaded = KMeansCodebook.load(out)  # a plain array now: no pickle
    np.testing.assert_array_equal(loaded.centroids, codebook.centroids)
    assert loaded.provenance["imported_sha256"] == sha256_file(path)


def test_a_plain_pickle_of_kmeans_imports(tmp_path):
    km = KMeans(n_clusters=5, random_state=0, n_init=1).fit(DATA)
    path = tmp_path / "km5.pkl"
    path.write_bytes(pickle.dumps(km, protocol=pickle.HIGHEST_PROTOCOL))
    np.testing.assert_array_equal(import_kmeans(path, sha256_file(path)).assign(DATA), km.predict(DATA))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    for name, obj in (("evil.bin", _Payload(marker)), ("nested.bin", {"km": _Payload(marker)})):
        path = tmp_path / name
        joblib.dump(obj, path)
        with pytest.raises(UnsafePickle, match="refused to load (posix|os|nt).system"):
            import_kmeans(path, sha256_file(path))
    assert not marker.exists()


def test_object_arrays_and_other_objects_are_refused(tmp_path):
    path = tmp_path / "objects.bin"
    joblib.dump(np.array([1, "a"], dtype=object), path)
    with pytest.raises(UnsafePickle, match="Python objects"):
        import_kmeans(path, sha256_file(path))
    path = tmp_path / "array.bin"
    joblib.dump(np.zeros((3, 2)), path)
    with pytest.raises(UnsafePickle, match="not a scikit-learn k-means"):
        import_kmeans(path, sha256_file(path))


def test_the_pin_must_match(fitted, tmp_path):
    path = tmp_path / "km.bin"
    joblib.dump(fitted, path)
    with pytest.raises(ConfigError, match="not the pinned"):
        import_kmeans(path, "0" * 64)
    with pytest.raises(ConfigError, match="full sha256"):
        import_kmeans(path, sha256_file(path)[:12])


def test_cli_import_kmeans(fitted, tmp_path):
    path = tmp_path / "km.bin"
    joblib.dump(fitted, path)
    out = tmp_path / "km.npy"
    args = [sys.executable, "-m", "echoforge", "import-kmeans", str(path), "--output", str(out)]
    ok = subprocess.run([*args, "--sha256", sha256_file(path), "--vocoder", "v"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "12 centres of dimension 6" in ok.stdout and KMeansCodebook.load(out).provenance["vocoder"] == "v"
    bad = subprocess.run([*args, "--sha256", "f" * 64], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
