"""The exported filter set (DESIGN.md §6): round trip, composition, validation, atomic save, no pickle."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from spatialopt.design.system import compose_fir
from spatialopt.errors import DataError
from spatialopt.filterset import FORMAT_VERSION, MANIFEST_NAME, TENSOR_FILE_NAME, FilterSet

D, T, T_CTC, T_V, T_BEAM = 4, 256, 160, 32, 96
LR_DELAY, C_DELAY = 7, 40
NAMES = ["outer_left", "inner_left", "inner_right", "outer_right"]


def make_filterset(seed: int = 0, **overrides) -> FilterSet:
    """A small filter set with random stages; ``fir`` is their composition."""
    g = torch.Generator().manual_seed(seed)
    kwargs = dict(
        ctc=torch.randn(2, D, T_CTC, generator=g),
        virtualizer=torch.randn(2, T_V, generator=g),
        beam=torch.randn(D, T_BEAM, generator=g),
        lr_delay=LR_DELAY,
        c_delay=C_DELAY,
        n_taps=T,
        sample_rate=48000.0,
        driver_names=list(NAMES),
        latency_samples=64,
        driver_positions=torch.tensor([[0.0, 0.18, 0.0], [0.0, 0.06, 0.0], [0.0, -0.06, 0.0], [0.0, -0.18, 0.1 / 3]],
                                      dtype=torch.float64),
        upmix={"centre_gain": 0.7071, "method": "pca"},
        config={"fs": 48000, "device": {"name": "soundbar_4"}, "optim": {"steps": 10}},
        metrics={"separation_db": 21.5, "undefined": None},
    )
    kwargs.update(overrides)
    return FilterSet.from_stages(**kwargs)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[FilterSet, Path]:
    """One saved filter set per module (saving fsyncs, so it is copied rather than re-saved)."""
    fs = make_filterset()
    return fs, fs.save(tmp_path_factory.mktemp("pristine") / "set")


@pytest.fixture
def saved(pristine, tmp_path) -> tuple[FilterSet, Path]:
    """A fresh copy of the pristine filter set in ``tmp_path / "set"`` (tests may damage it)."""
    fs, source = pristine
    return fs, Path(shutil.copytree(source, tmp_path / "set"))


def read_manifest(directory: Path) -> dict:
    return json.loads((directory / MANIFEST_NAME).read_text())


def write_manifest(directory: Path, manifest: dict) -> None:
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def rehash(directory: Path) -> None:
    """Make the manifest's size and SHA-256 match the tensor file as it is now."""
    data = (directory / TENSOR_FILE_NAME).read_bytes()
    manifest = read_manifest(directory)
    manifest["files"]["tensors"]["bytes"] = len(data)
    manifest["files"]["tensors"]["sha256"] = hashlib.sha256(data).hexdigest()
    write_manifest(directory, manifest)


def assert_load_fails(directory: Path, offending: Path, *fragments: str) -> DataError:
    """``FilterSet.load`` raises DataError (nothing else) naming ``offending`` and every fragment."""
    with pytest.raises(DataError) as info:
        FilterSet.load(directory)
    message = str(info.value)
    assert str(offending) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def leftovers(parent: Path) -> list[str]:
    """Hidden temporary/aside directories that a save may have left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------------------------
# Round trip and composition
# ---------------------------------------------------------------------------------------------


def test_round_trip_is_bit_exact(saved):
    fs, directory = saved
    assert sorted(os.listdir(directory)) == [TENSOR_FILE_NAME, MANIFEST_NAME]
    back = FilterSet.load(directory)
    assert back.fir.dtype == torch.float32 and back.fir.shape == (3, D, T)
    assert torch.equal(back.fir, fs.fir)
    for name in ("ctc", "virtualizer", "beam"):
        assert back.stages[name].dtype == torch.float32
        assert torch.equal(back.stages[name], fs.stages[name]), name
    assert back.sample_rate == 48000.0
    assert back.channel_names == ["L", "R", "C"]
    assert back.driver_names == NAMES
    assert back.latency_samples == 64
    assert back.delays == {"lr_delay": LR_DELAY, "c_delay": C_DELAY}
    assert back.driver_positions.dtype == torch.float64
    assert torch.equal(back.driver_positions, fs.driver_positions)  # 0.1/3 survives JSON exactly
    assert back.upmix == {"centre_gain": 0.7071, "method": "pca"}
    assert back.config == {"fs": 48000, "device": {"name": "soundbar_4"}, "optim": {"steps": 10}}
    assert back.metrics == {"separation_db": 21.5, "undefined": None}
    assert back.n_drivers == D and back.n_taps == T
    assert set(back.provenance) == {"created", "spatialopt_version"}
    assert back.provenance["created"].endswith("+00:00")

    manifest = read_manifest(directory)
    data = (directory / TENSOR_FILE_NAME).read_bytes()
    assert manifest["format_version"] == FORMAT_VERSION == 1
    assert manifest["n_taps"] == T
    assert manifest["tensors"] == {"fir": [3, D, T], "ctc": [2, D, T_CTC], "virtualizer": [2, T_V], "beam": [D, T_BEAM]}
    assert manifest["files"]["tensors"] == {"name": TENSOR_FILE_NAME, "bytes": len(data),
                                            "sha256": hashlib.sha256(data).hexdigest()}


def test_saving_again_replaces_the_set(saved, tmp_path):
    _, directory = saved
    other = make_filterset(seed=1, latency_samples=3)
    assert other.save(directory) == directory
    back = FilterSet.load(directory)
    assert torch.equal(back.fir, other.fir)
    assert back.latency_samples == 3
    assert leftovers(tmp_path) == []


def test_metadata_converts_numpy_and_non_finite_metrics(tmp_path):
    import numpy as np

    fs = make_filterset(sample_rate=np.float64(44100.0), latency_samples=np.int64(5),
                        metrics={"a": np.float32(0.5), "b": float("nan"), "c": torch.tensor([1.0, 2.0])})
    directory = fs.save(tmp_path / "np")
    back = FilterSet.load(directory)
    assert back.sample_rate == 44100.0 and back.latency_samples == 5
    assert back.metrics == {"a": 0.5, "b": None, "c": [1.0, 2.0]}
    assert "NaN" not in (directory / MANIFEST_NAME).read_text()  # strict JSON


def test_composite_is_the_composition_of_the_stages():
    fs = make_filterset()
    st = fs.stages
    expected = compose_fir(st["ctc"].double(), st["virtualizer"].double(), st["beam"].double(), LR_DELAY, C_DELAY, T)
    assert fs.fir.shape == (3, D, T)
    assert float((fs.fir.double() - expected).abs().max()) < 1e-4
    # the C channel is the beam delayed by c_delay, exactly (no convolution involved)
    assert torch.equal(fs.fir[2, :, C_DELAY:C_DELAY + T_BEAM], st["beam"])
    assert torch.count_nonzero(fs.fir[2, :, :C_DELAY]) == 0
    assert torch.count_nonzero(fs.fir[:2, :, :LR_DELAY]) == 0
    err = fs.check_composition()
    assert 0.0 <= err < 1e-4


def test_check_composition_detects_a_tampered_fir():
    fs = make_filterset()
    fs.fir = fs.fir.clone()
    fs.fir[1, 2, 100] += 0.01
    with pytest.raises(DataError, match="differs from the composition"):
        fs.check_composition()


def test_check_composition_after_load(saved):
    _, directory = saved
    back = FilterSet.load(directory)
    assert back.check_composition() < 1e-4
    back.delays = {"lr_delay": LR_DELAY + 1, "c_delay": C_DELAY}
    with pytest.raises(DataError, match="differs from the composition"):
        back.check_composition()


# ---------------------------------------------------------------------------------------------
# Refused at save
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["fir", "ctc", "beam"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_refused_before_writing(tmp_path, where, value):
    fs = make_filterset()
    tensor = fs.fir if where == "fir" else fs.stages[where]
    tensor.view(-1)[3] = value
    target = tmp_path / "bad"
    with pytest.raises(DataError, match=f"{where} contains NaN or Inf") as info:
        fs.save(target)
    assert str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary directory


def test_float64_overflowing_float32_is_refused(tmp_path):
    fs = make_filterset()
    fs.fir = fs.fir.double()
    fs.fir[0, 0, 0] = 1e300
    with pytest.raises(DataError, match="fir contains NaN or Inf"):
        fs.save(tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change, fragment",
    [
        (dict(sample_rate=-48000.0), "sample_rate=-48000.0"),
        (dict(sample_rate=float("nan")), "sample_rate=nan"),
        (dict(driver_names=NAMES[:3]), "fir has 4 drivers but there are 3 driver_names"),
        (dict(driver_names=["a", "a", "b", "c"]), "not unique"),
        (dict(latency_samples=-1), "latency_samples=-1"),
        (dict(upmix={"centre_gain": float("inf")}), "upmix.centre_gain=inf"),
        (dict(upmix={"nested": {"x": 1}}), "upmix.nested"),
        (dict(driver_positions=torch.zeros(4, 2)), "driver_positions"),
        (dict(driver_positions=torch.full((4, 3), float("nan"))), "driver_positions"),
        (dict(metrics={"x": object()}), "metrics.x: value of type object"),
    ],
)
def test_invalid_metadata_is_refused_at_save(tmp_path, change, fragment):
    fs = make_filterset()
    for key, value in change.items():
        setattr(fs, key, value)
    target = tmp_path / "bad"
    with pytest.raises(DataError) as info:
        fs.save(target)
    assert fragment in str(info.value) and str(target) in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_replace_something_that_is_not_a_filter_set(tmp_path):
    fs = make_filterset()
    a_file = tmp_path / "file"
    a_file.write_text("precious")
    with pytest.raises(DataError, match="not a directory"):
        fs.save(a_file)
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match="without manifest.json"):
        fs.save(folder)
    assert a_file.read_text() == "precious" and (folder / "notes.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert FilterSet.load(fs.save(empty)).driver_names == NAMES
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Atomic save
# ---------------------------------------------------------------------------------------------


def _partial_save(exc: BaseException):
    def fake_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"fir\":")  # the start of a header, then "crash"
        raise exc

    return fake_save_file


@pytest.mark.parametrize("exc, expected", [(OSError(28, "No space left on device"), DataError),
                                           (KeyboardInterrupt(), KeyboardInterrupt)])
def test_interrupted_save_keeps_the_old_set(saved, tmp_path, monkeypatch, exc, expected):
    fs, directory = saved
    before = {name: (directory / name).read_bytes() for name in (MANIFEST_NAME, TENSOR_FILE_NAME)}
    monkeypatch.setattr(safetensors.torch, "save_file", _partial_save(exc))
    with pytest.raises(expected) as info:
        make_filterset(seed=2).save(directory)
    if expected is DataError:
        assert str(directory) in str(info.value) and "No space left on device" in str(info.value)
    monkeypatch.undo()
    assert {name: (directory / name).read_bytes() for name in before} == before
    assert torch.equal(FilterSet.load(directory).fir, fs.fir)
    assert leftovers(tmp_path) == []


def test_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(safetensors.torch, "save_file", _partial_save(OSError(5, "I/O error")))
    with pytest.raises(DataError, match="I/O error"):
        make_filterset().save(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_restores_the_old_set(saved, tmp_path, monkeypatch):
    """The fallback of systems without an atomic exchange (two renames): a failed second rename
    puts the old set back. (The atomic exchange itself: tests/test_faults.py.)"""
    import spatialopt.fileio

    fs, directory = saved
    monkeypatch.setattr(spatialopt.fileio, "_exchange", lambda new, target: False)
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in os.fspath(src):
            raise OSError(18, "Invalid cross-device link")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(DataError, match="Invalid cross-device link"):
        make_filterset(seed=3).save(directory)
    monkeypatch.undo()
    assert torch.equal(FilterSet.load(directory).fir, fs.fir)
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Refused at load
# ---------------------------------------------------------------------------------------------


def test_missing_directory_manifest_and_tensor_file(saved, tmp_path):
    _, directory = saved
    assert_load_fails(tmp_path / "nowhere", tmp_path / "nowhere", "not found")
    assert_load_fails(directory / MANIFEST_NAME, directory / MANIFEST_NAME, "not a directory")
    (directory / TENSOR_FILE_NAME).unlink()
    assert_load_fails(directory, directory / TENSOR_FILE_NAME, "tensor file not found")
    (directory / MANIFEST_NAME).unlink()
    assert_load_fails(directory, directory / MANIFEST_NAME, "manifest not found")


def test_truncated_tensor_file(saved):
    _, directory = saved
    path = directory / TENSOR_FILE_NAME
    path.write_bytes(path.read_bytes()[:-100])
    assert_load_fails(directory, path, "truncated")


def test_truncated_tensor_file_with_recomputed_hash(saved):
    _, directory = saved
    path = directory / TENSOR_FILE_NAME
    path.write_bytes(path.read_bytes()[:-100])
    rehash(directory)  # size and hash agree with the file: the safetensors framing catches it
    assert_load_fails(directory, path, "tensor data ends at byte")


def test_flipped_byte_is_a_hash_mismatch(saved):
    _, directory = saved
    path = directory / TENSOR_FILE_NAME
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    assert_load_fails(directory, path, "SHA-256 mismatch")


@pytest.mark.parametrize("text, fragment", [
    ("{\"format_version\": 1,", "not valid JSON"),
    ("", "not valid JSON"),
    ("\xff\xfe", "not valid JSON"),
    ("[1, 2, 3]", "must be a JSON object, got list"),
    ("{\"format_version\": NaN}", "not valid JSON"),
    ("[" * 100000 + "]" * 100000, "not valid JSON"),
])
def test_manifest_that_is_not_a_json_object(saved, text, fragment):
    _, directory = saved
    (directory / MANIFEST_NAME).write_bytes(text.encode("latin-1"))
    assert_load_fails(directory, directory / MANIFEST_NAME, fragment)


@pytest.mark.parametrize("version, fragment", [
    (99, "format_version 99 is newer than this spatialopt supports (1)"),
    (0, "unknown format_version 0"),
    ("1", "unknown format_version '1'"),
    (True, "unknown format_version True"),
    (None, "unknown format_version None"),
])
def test_format_version(saved, version, fragment):
    _, directory = saved
    manifest = read_manifest(directory)
    manifest["format_version"] = version
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, fragment)


def test_missing_format_version(saved):
    _, directory = saved
    manifest = read_manifest(directory)
    del manifest["format_version"]
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, "missing format_version")


def plant_tensors(directory: Path, tensors: dict, manifest_shapes: bool = False) -> None:
    """Replace the tensor file (and its hash in the manifest) with ``tensors``."""
    safetensors.torch.save_file(tensors, str(directory / TENSOR_FILE_NAME))
    if manifest_shapes:
        manifest = read_manifest(directory)
        manifest["tensors"] = {name: list(t.shape) for name, t in tensors.items()}
        write_manifest(directory, manifest)
    rehash(directory)


def current_tensors(directory: Path) -> dict:
    return safetensors.torch.load((directory / TENSOR_FILE_NAME).read_bytes())


@pytest.mark.parametrize("name", ["fir", "ctc", "virtualizer", "beam"])
def test_nan_planted_in_the_file_is_refused_at_load(saved, name):
    _, directory = saved
    tensors = current_tensors(directory)
    tensors[name].view(-1)[7] = float("nan")
    plant_tensors(directory, tensors)
    assert_load_fails(directory, directory / TENSOR_FILE_NAME, f"tensor {name} contains NaN or Inf")


def test_driver_count_mismatch(saved):
    _, directory = saved
    manifest = read_manifest(directory)
    manifest["driver_names"] = NAMES[:3]
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, "fir has 4 drivers but there are 3 driver_names")


def test_driver_count_mismatch_in_the_tensors(saved):
    _, directory = saved
    tensors = current_tensors(directory)
    tensors["beam"] = tensors["beam"][:3].contiguous()
    plant_tensors(directory, tensors, manifest_shapes=True)
    assert_load_fails(directory, directory / MANIFEST_NAME, "beam has shape (3, 96), expected (4, T_beam)")


def test_tensor_shape_differs_from_the_manifest(saved):
    _, directory = saved
    tensors = current_tensors(directory)
    tensors["virtualizer"] = torch.zeros(2, T_V + 2)
    tensors["beam"] = tensors["beam"][:, 2:].contiguous()  # same total size, so the size check passes
    plant_tensors(directory, tensors)
    assert_load_fails(directory, directory / TENSOR_FILE_NAME, "the manifest says")


@pytest.mark.parametrize("change, fragment", [
    ({"fir": [D, T]}, "fir has shape"),
    ({"fir": [2, D, T]}, "expected (3 channels L/R/C"),
    ({"ctc": [D, T_CTC]}, "ctc has shape"),
    ({"virtualizer": [3, T_V]}, "virtualizer has shape"),
    ({"extra": [1]}, "unexpected ['extra']"),
])
def test_wrong_ranks_in_the_manifest(saved, change, fragment):
    _, directory = saved
    manifest = read_manifest(directory)
    manifest["tensors"].update(change)
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, fragment)


def test_missing_tensor_in_the_file(saved):
    _, directory = saved
    tensors = current_tensors(directory)
    del tensors["ctc"]
    plant_tensors(directory, tensors)
    assert_load_fails(directory, directory / MANIFEST_NAME, "implausible")  # file too small for the manifest
    manifest = read_manifest(directory)
    del manifest["tensors"]["ctc"]
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, "missing ['ctc']")


def test_wrong_dtype_in_the_file(saved):
    _, directory = saved
    tensors = current_tensors(directory)
    tensors["fir"] = tensors["fir"].view(torch.int32)  # same size, other dtype
    plant_tensors(directory, tensors)
    assert_load_fails(directory, directory / TENSOR_FILE_NAME, "dtype 'I32'")


@pytest.mark.parametrize("rate", [-48000.0, 0, "48000", None, 1e300])
def test_bad_sample_rate(saved, rate):
    _, directory = saved
    manifest = read_manifest(directory)
    manifest["sample_rate"] = rate
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, f"sample_rate={rate!r}")


@pytest.mark.parametrize("key", ["lr_delay", "c_delay"])
def test_delay_beyond_the_composite_is_refused(saved, tmp_path, key):
    """Found by fuzzing (issue 6): a delay in (T, T + path length) made check_composition (and
    anything composing the stages) fail inside compose_fir with a RuntimeError."""
    _, directory = saved
    manifest = read_manifest(directory)
    manifest["delays"][key] = T + 1
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, f"delays.{key}={T + 1} is beyond the composite's n_taps={T}")
    manifest["delays"][key] = T  # the path starts at the end: nothing of it is left, but it is placeable
    write_manifest(directory, manifest)
    with pytest.raises(DataError, match="composition check"):  # the taps say otherwise: DataError, no crash
        FilterSet.load(directory).check_composition()
    with pytest.raises(DataError, match=f"delays.{key}={T + 1}"):
        make_filterset(**{key: T + 1})
    fs = make_filterset()
    fs.delays[key] = T + 5
    with pytest.raises(DataError, match=f"delays.{key}={T + 5}"):
        fs.save(tmp_path / "other")
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("field, value, fragment", [
    ("n_taps", 10**12, "n_taps=1000000000000"),
    ("tensors", {"fir": [3, D, 10**12]}, "tensors.fir: shape [3, 4, 1000000000000]"),
    ("tensors", {"fir": [3, D, 2**24], "ctc": [2, D, 2**24]}, "more than the"),
    ("driver_names", [f"d{i}" for i in range(5000)], "driver_names must be a list of 1..4096 names, got 5000"),
])
def test_absurd_sizes_are_refused_before_reading_tensors(saved, monkeypatch, field, value, fragment):
    _, directory = saved
    manifest = read_manifest(directory)
    if field == "tensors":
        manifest["tensors"].update(value)
    else:
        manifest[field] = value
    write_manifest(directory, manifest)
    opened = []
    real_open = open

    def spy_open(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy_open)
    assert_load_fails(directory, directory / MANIFEST_NAME, fragment)
    monkeypatch.undo()
    assert str(directory / TENSOR_FILE_NAME) not in opened


def test_implausible_tensor_file_size(saved):
    _, directory = saved
    path = directory / TENSOR_FILE_NAME
    with open(path, "ab") as fh:
        fh.write(b"\0" * (2**20 + 1024))
    rehash(directory)
    assert_load_fails(directory, directory / MANIFEST_NAME, "implausible")


@pytest.mark.parametrize("name", ["../filters.safetensors", "/etc/passwd", "sub/filters.safetensors",
                                  "..", "a\\b", "", "C:evil", None, 7])
@pytest.mark.parametrize("role", ["tensors", "export_wav_L"])
def test_unsafe_file_names_in_the_manifest(saved, tmp_path, name, role):
    _, directory = saved
    (tmp_path / "filters.safetensors").write_bytes(b"outside")  # what ../ would reach
    manifest = read_manifest(directory)
    if role == "tensors":
        manifest["files"]["tensors"]["name"] = name
    else:
        manifest["files"][role] = {"name": name}
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, f"files.{role}: unsafe or invalid file name {name!r}")


def test_other_safe_file_names_are_not_read(saved):
    _, directory = saved
    manifest = read_manifest(directory)
    manifest["files"]["tensors"]["name"] = "other.safetensors"
    write_manifest(directory, manifest)
    assert_load_fails(directory, directory / MANIFEST_NAME, "expected 'filters.safetensors'")
    manifest["files"]["tensors"]["name"] = TENSOR_FILE_NAME
    manifest["files"]["export_wav_L"] = {"name": "L.wav"}  # listed, valid, never opened
    write_manifest(directory, manifest)
    assert FilterSet.load(directory).driver_names == NAMES


class _Marker:
    """Unpickling this creates the directory ``path`` (a visible side effect)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickle_payload_is_refused_without_executing_it(saved, tmp_path):
    _, directory = saved
    marker = tmp_path / "pwned"
    path = directory / TENSOR_FILE_NAME
    payload = pickle.dumps(_Marker(str(marker)), protocol=4)
    size = path.stat().st_size
    path.write_bytes(payload + b"\0" * (size - len(payload)))  # same size, so only the content is wrong
    rehash(directory)  # and a matching hash: the loader must still refuse to interpret it
    assert_load_fails(directory, path, "not a safetensors file")
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is live: unpickling it does create the marker
    assert marker.is_dir()


def test_safetensors_file_with_a_corrupt_header(saved):
    _, directory = saved
    path = directory / TENSOR_FILE_NAME
    data = bytearray(path.read_bytes())
    start = data.index(b'"data_offsets":[') + len(b'"data_offsets":[')
    data[start] = ord("x")  # header no longer JSON
    path.write_bytes(bytes(data))
    rehash(directory)
    assert_load_fails(directory, path, "header is not JSON")


# every field of the manifest, set to every wrong type: DataError or a valid load, never a crash
FIELDS = ["format_version", "sample_rate", "n_taps", "channel_names", "driver_names", "driver_positions",
          "latency_samples", "delays", "upmix", "tensors", "files", "config", "metrics", "created"]
WRONG = [None, "x", [], {}, -1, 1.5, True, [None], {"x": None}, 2**70]


def test_every_malformed_manifest_field_is_a_data_error(saved):
    fs, directory = saved
    original = read_manifest(directory)
    outcomes = {}
    for field in FIELDS:
        for value in WRONG:
            manifest = json.loads(json.dumps(original))
            manifest[field] = value
            write_manifest(directory, manifest)
            try:
                back = FilterSet.load(directory)
            except DataError as exc:
                assert str(directory / MANIFEST_NAME) in str(exc) or str(directory) in str(exc), str(exc)
                outcomes[field, repr(value)] = "refused"
            else:
                assert torch.equal(back.fir, fs.fir)
                outcomes[field, repr(value)] = "loaded"
    loaded = sorted(k for k, v in outcomes.items() if v == "loaded")
    # only optional, free-form fields may take a null/empty value (and 1.5 Hz is a positive sample rate)
    assert loaded == sorted([("config", "None"), ("config", "{}"), ("config", "{'x': None}"),
                             ("created", "None"), ("created", repr("x")), ("driver_positions", "None"), ("metrics", "None"),
                             ("metrics", "{}"), ("metrics", "{'x': None}"), ("sample_rate", "1.5"), ("upmix", "None"),
                             ("upmix", "{}"), ("upmix", "{'x': None}")]), loaded
    for key in ("delays", "files"):
        for sub in original[key]:
            manifest = json.loads(json.dumps(original))
            del manifest[key][sub]
            write_manifest(directory, manifest)
            with pytest.raises(DataError):
                FilterSet.load(directory)


def test_fuzzed_tensor_file_is_always_a_data_error(saved):
    """Random byte changes in the tensor file, with the hash recomputed: DataError or a finite load."""
    _, directory = saved
    path = directory / TENSOR_FILE_NAME
    original = path.read_bytes()
    n_header = int.from_bytes(original[:8], "little")
    g = torch.Generator().manual_seed(1)
    outcomes = {"refused": 0, "loaded": 0}
    for i in range(60):
        data = bytearray(original)
        # half in the framing/header (where parsing happens), half anywhere
        limit = 8 + n_header if i % 2 == 0 else len(data)
        for pos in torch.randint(0, limit, (3,), generator=g).tolist():
            data[pos] = int(torch.randint(0, 256, (1,), generator=g))
        path.write_bytes(bytes(data))
        rehash(directory)
        try:
            back = FilterSet.load(directory)
        except DataError as exc:
            assert str(directory) in str(exc)
            outcomes["refused"] += 1
        else:
            assert all(bool(torch.isfinite(t).all()) for t in [back.fir, *back.stages.values()])
            outcomes["loaded"] += 1
    assert outcomes["refused"] >= 20 and outcomes["refused"] + outcomes["loaded"] == 60, outcomes


def test_tensor_file_that_is_a_directory(saved):
    _, directory = saved
    path = directory / TENSOR_FILE_NAME
    path.unlink()
    path.mkdir()
    assert_load_fails(directory, path, "not a regular file")

