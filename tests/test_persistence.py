"""Safe saving and loading of fitted protectors (sklearn_privacy.persistence)."""

import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_privacy.motion import (
    Downsampler,
    GaussianNoise,
    MotionAnonymizer,
    ReplacementAutoEncoder,
    SSASmoother,
)
from sklearn_privacy.persistence import FORMAT_VERSION, load_protector, save_protector

RNG = np.random.RandomState(0)
X = RNG.randn(48, 32, 3).astype(np.float32)
Y = RNG.randint(0, 3, 48)
S = RNG.randint(0, 2, 48)


def _anonymizer():
    return MotionAnonymizer(
        n_filters=2, classifier_filters=2, n_rounds=1, classifier_epochs=1,
        anonymizer_epochs=1, batch_size=32, device="cpu", random_state=0,
    ).fit(X, Y, sensitive_features=S)


def _rae():
    return ReplacementAutoEncoder(
        sensitive=[2], neutral=[1], max_epochs=1, batch_size=32, device="cpu", random_state=0
    ).fit(X, Y)


def _anonymizer_two_attributes():
    # string labels held in object arrays, two sensitive columns, the hard task bottleneck
    labels = np.array(["sit", "walk", "run"], dtype=object)[Y]
    sensitive = np.column_stack([S, np.random.RandomState(1).randint(0, 3, len(S))])
    return MotionAnonymizer(
        n_filters=2, classifier_filters=2, n_rounds=1, classifier_epochs=1,
        anonymizer_epochs=1, batch_size=32, task_bottleneck="hard", device="cpu",
        random_state=0,
    ).fit(X, labels, sensitive_features=sensitive)


FITTED = {
    "MotionAnonymizer": _anonymizer,
    "MotionAnonymizer-two-attributes": _anonymizer_two_attributes,
    "ReplacementAutoEncoder": _rae,
    "Downsampler": lambda: Downsampler(target_rate=10).fit(X),
    "Downsampler-short": lambda: Downsampler(target_rate=10, restore_length=False).fit(X),
    "SSASmoother": lambda: SSASmoother(n_components=2).fit(X),
    "GaussianNoise": lambda: GaussianNoise(sigma=0.3, noise_random_state=5).fit(X),
    "Pipeline": lambda: make_pipeline(
        Downsampler(), SSASmoother(), GaussianNoise(noise_random_state=1)
    ).fit(X),
    "Pipeline-torch": lambda: make_pipeline(_rae(), SSASmoother()).fit(X, Y),
}


def _rewrite(path, *, manifest=None, estimator=None, members=None, fix_checksums=True):
    """Rewrite a saved file, changing parts; recompute the checksums unless told not to."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    man = json.loads(parts.pop("manifest.json"))
    if estimator is not None:
        parts["estimator.json"] = json.dumps(estimator(json.loads(parts["estimator.json"])))
        parts["estimator.json"] = parts["estimator.json"].encode()
    parts.update(members or {})
    if fix_checksums:
        man["checksums"] = {n: hashlib.sha256(d).hexdigest() for n, d in parts.items()}
    if manifest is not None:
        man = manifest(man)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps(man))
        for name, data in parts.items():
            archive.writestr(name, data)


def test_every_motion_protector_is_covered():
    from sklearn_privacy import motion

    assert {name.split("-")[0] for name in FITTED} >= set(motion.__all__)


@pytest.mark.parametrize("name", list(FITTED))
def test_round_trip_gives_identical_transform(name, tmp_path):
    protector = FITTED[name]()
    path = save_protector(protector, tmp_path / "p.skp")
    torch_state = torch.get_rng_state()
    loaded = load_protector(path)
    assert torch.equal(torch_state, torch.get_rng_state())  # loading draws nothing
    assert type(loaded) is type(protector)
    assert loaded is not protector
    np.testing.assert_array_equal(loaded.transform(X), protector.transform(X))
    assert loaded.get_params(deep=False).keys() == protector.get_params(deep=False).keys()
    # plain pickling of the loaded protector keeps working
    again = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(again.transform(X[:5]), protector.transform(X[:5]))


def test_round_trip_keeps_2d_table_layout(tmp_path):
    protector = SSASmoother().fit(X[:, :, 0])
    loaded = load_protector(save_protector(protector, tmp_path / "p.skp"))
    out = loaded.transform(X[:, :, 0])
    assert out.shape == X[:, :, 0].shape
    np.testing.assert_array_equal(out, protector.transform(X[:, :, 0]))


def test_unfitted_protector_round_trips_its_parameters(tmp_path):
    protector = GaussianNoise(sigma=0.7, noise_random_state=3)
    loaded = load_protector(save_protector(protector, tmp_path / "p.skp"))
    assert loaded.get_params() == protector.get_params()


def test_refuses_to_save_other_estimators(tmp_path):
    with pytest.raises(TypeError, match="only these classes can be saved safely"):
        save_protector(StandardScaler().fit(X[:, :, 0]), tmp_path / "p.skp")
    with pytest.raises(TypeError, match="only these classes"):
        save_protector(make_pipeline(Downsampler(), StandardScaler()), tmp_path / "p.skp")


def test_pickle_file_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.skp"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="not a protector file"):
        load_protector(path)
    assert not marker.exists()


def test_pickled_weights_are_refused_even_with_valid_checksums(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = save_protector(_rae(), tmp_path / "p.skp")
    buffer = io.BytesIO()
    torch.save({"weight": Payload()}, buffer)
    _rewrite(path, members={"weights-0.pt": buffer.getvalue()})
    with pytest.raises(ValueError, match="not a plain state dict"):
        load_protector(path)
    assert not marker.exists()


def test_tampered_file_is_refused(tmp_path):
    path = save_protector(SSASmoother().fit(X), tmp_path / "p.skp")

    def set_components(doc):
        doc["params"]["n_components"] = 3
        return doc

    _rewrite(path, estimator=set_components, fix_checksums=False)
    with pytest.raises(ValueError, match="tampered with or is corrupted"):
        load_protector(path)


def test_unknown_class_is_refused(tmp_path):
    path = save_protector(SSASmoother().fit(X), tmp_path / "p.skp")

    def rename(doc):
        doc["class"] = "os.system"
        return doc

    _rewrite(path, estimator=rename)
    with pytest.raises(ValueError, match="'os.system', which load_protector does not load"):
        load_protector(path)


def test_network_class_outside_the_library_is_refused(tmp_path):
    path = save_protector(_rae(), tmp_path / "p.skp")

    def swap_module(doc):
        doc["state"]["net_"]["__net__"]["module"] = "subprocess.Popen"
        return doc

    _rewrite(path, estimator=swap_module)
    with pytest.raises(ValueError, match="outside sklearn-privacy"):
        load_protector(path)


def test_future_format_version_is_refused(tmp_path):
    path = save_protector(SSASmoother().fit(X), tmp_path / "p.skp")

    def future(man):
        man["format_version"] = FORMAT_VERSION + 1
        man["sklearn_privacy_version"] = "9.0"
        return man

    _rewrite(path, manifest=future)
    with pytest.raises(ValueError, match=r"format version 2, written by sklearn-privacy 9\.0"):
        load_protector(path)


def test_other_library_version_warns(tmp_path):
    path = save_protector(SSASmoother().fit(X), tmp_path / "p.skp")

    def older(man):
        man["sklearn_privacy_version"] = "0.0.1"
        return man

    _rewrite(path, manifest=older)
    with pytest.warns(UserWarning, match="written by sklearn-privacy 0.0.1"):
        load_protector(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_weights_load_on_cpu_with_a_warning(tmp_path):
    protector = _anonymizer()
    path = save_protector(protector, tmp_path / "p.skp")

    def on_cuda(doc):  # what a GPU-trained protector's file holds
        doc["state"]["device_"] = "cuda:0"
        doc["state"]["net_"]["__net__"]["device"] = "cuda:0"
        return doc

    _rewrite(path, estimator=on_cuda)
    with pytest.warns(UserWarning, match="loading on CPU"):
        loaded = load_protector(path)
    assert loaded.device_ == "cpu"
    np.testing.assert_array_equal(loaded.transform(X), protector.transform(X))


def test_missing_file_and_non_archive(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_protector(tmp_path / "absent.skp")
    bad = tmp_path / "bad.skp"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a zip archive"):
        load_protector(bad)


def test_malformed_document_is_a_clear_error(tmp_path):
    path = save_protector(SSASmoother().fit(X), tmp_path / "p.skp")

    def break_params(doc):
        doc["params"] = ["not", "a", "mapping"]
        return doc

    _rewrite(path, estimator=break_params)
    with pytest.raises(ValueError, match="malformed"):
        load_protector(path)

    def bad_device(doc):
        doc["state"]["device_"] = {"__device__": "not-a-device"}
        return doc

    path = save_protector(SSASmoother().fit(X), tmp_path / "q.skp")
    _rewrite(path, estimator=bad_device)
    with pytest.raises(ValueError, match="malformed"):
        load_protector(path)
