"""Out-of-core transforms: chunked_transform (numpy / .npy memmap) and dask_transform."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from sklearn_privacy.motion import (
    Downsampler,
    GaussianNoise,
    ReplacementAutoEncoder,
    SSASmoother,
)
from sklearn_privacy.utils import chunked_transform, dask_transform

da = pytest.importorskip("dask.array")

RNG = np.random.RandomState(0)
X = RNG.randn(37, 50, 3).astype(np.float32)


@pytest.fixture(scope="module")
def protectors():
    y = RNG.randint(0, 3, len(X))
    return {
        "ssa": SSASmoother(n_components=2).fit(X),
        "downsampler-short": Downsampler(target_rate=10, restore_length=False).fit(X),
        "rae": ReplacementAutoEncoder(
            sensitive=[2], neutral=[1], max_epochs=1, batch_size=8, device="cpu",
            random_state=0,
        ).fit(X, y),
        "pipeline": make_pipeline(Downsampler(), SSASmoother()).fit(X),
    }


@pytest.mark.parametrize("name", ["ssa", "downsampler-short", "rae", "pipeline"])
@pytest.mark.parametrize("chunk_size", [1, 5, 16, 37, 100])
def test_chunked_equals_in_memory(protectors, name, chunk_size):
    protector = protectors[name]
    expected = protector.transform(X)
    out = chunked_transform(protector, X, chunk_size=chunk_size)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_memmap_in_npy_out(protectors, tmp_path):
    np.save(tmp_path / "in.npy", X)
    source = np.load(tmp_path / "in.npy", mmap_mode="r")
    out = chunked_transform(protectors["ssa"], source, tmp_path / "out.npy", chunk_size=7)
    assert isinstance(out, np.memmap)
    on_disk = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(on_disk, out)
    np.testing.assert_allclose(on_disk, protectors["ssa"].transform(X), rtol=1e-6, atol=1e-6)


def test_2d_input(protectors):
    smoother = SSASmoother().fit(X[:, :, 0])
    np.testing.assert_allclose(
        chunked_transform(smoother, X[:, :, 0], chunk_size=6),
        smoother.transform(X[:, :, 0]), rtol=1e-6, atol=1e-6,
    )


def test_seeded_noise_is_drawn_per_chunk():
    # Each call of transform restarts noise_random_state: chunk by chunk equals the
    # transform of each chunk on its own, not of the whole array.
    noise = GaussianNoise(sigma=0.5, noise_random_state=0).fit(X)
    out = chunked_transform(noise, X, chunk_size=10)
    np.testing.assert_array_equal(out[10:20], noise.transform(X[10:20]))
    np.testing.assert_array_equal(out[:10], noise.transform(X[:10]))


def test_empty_input(protectors, tmp_path):
    empty = np.zeros((0, 50, 3), dtype=np.float32)
    out = chunked_transform(protectors["downsampler-short"], empty, tmp_path / "o.npy")
    assert out.shape == (0, 10, 3)
    lazy = dask_transform(protectors["ssa"], da.from_array(empty, chunks=(4, 50, 3)))
    assert lazy.compute().shape == (0, 50, 3)


def test_bad_input(protectors):
    with pytest.raises(ValueError, match="first axis"):
        chunked_transform(protectors["ssa"], np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        chunked_transform(protectors["ssa"], X, chunk_size=0)
    with pytest.raises(ValueError):  # the protector's own check: wrong window length
        chunked_transform(protectors["ssa"], X[:, :20])
    with pytest.raises(TypeError, match="takes a dask.array.Array"):
        dask_transform(protectors["ssa"], X)
    with pytest.raises(ValueError, match="first axis"):
        dask_transform(protectors["ssa"], da.zeros(5))


def test_rows_must_be_kept():
    class Drops:
        def transform(self, X):
            return X[:-1]

    with pytest.raises(ValueError, match="one output per input window"):
        chunked_transform(Drops(), X, chunk_size=4)


@pytest.mark.parametrize("chunks", [(4, 50, 3), (13, 25, 1), (37, 50, 3)])
@pytest.mark.parametrize("name", ["ssa", "downsampler-short", "rae"])
def test_dask_equals_in_memory(protectors, name, chunks):
    protector = protectors[name]
    lazy = dask_transform(protector, da.from_array(X, chunks=chunks))
    expected = protector.transform(X)
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    assert lazy.chunks[0] == da.from_array(X, chunks=chunks).chunks[0]
    np.testing.assert_allclose(
        lazy.compute(scheduler="threads"), expected, rtol=1e-6, atol=1e-6
    )


def test_dask_missing_message(monkeypatch, protectors):
    import sys

    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r'sklearn-privacy\[distributed\]'):
        dask_transform(protectors["ssa"], X)
