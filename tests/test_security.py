"""Security (issue 6): no loader ever unpickles, and a filter set's manifest never makes the loader
open anything but its own two files.

Pickle: a live payload (an object whose ``__reduce__`` creates a marker directory) is planted in
the input of every loader, in every container that could carry one — a raw pickle stream, a
``torch.save`` archive (zip with ``data.pkl``, and the legacy format), a NumPy object array
(``.npy`` alone and as an ``.npz`` member), HDF5 opaque/variable-length data and attributes —
and the loader must refuse it with the project's error while the marker never appears. Each test
then unpickles the planted bytes itself to prove the payload was live.

Loaders: :meth:`FilterSet.load` (``manifest.json``, ``filters.safetensors``),
:meth:`Scene.load_npz`, :func:`spatialopt.acoustics.measured.load_directivity` (``.npz`` and
SOFA), :meth:`SofaListener.from_file`, :meth:`Trainer.load_checkpoint` (``torch.load(...,
weights_only=True)``). ``tests/test_filterset.py`` already covers a raw pickle in the tensor file
and unsafe ``files.*.name`` values; this file adds the other containers and loaders, and checks
with an audit hook which files the loader really opens for every path-like manifest field.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import make_config, small_scene_arrays
from spatialopt.errors import SpatialoptError
from spatialopt.filterset import MANIFEST_NAME, TENSOR_FILE_NAME, FilterSet


class Marker:
    """Unpickling this creates the directory ``path``: a visible side effect of code execution."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def payloads(marker: Path) -> dict[str, bytes]:
    """Every container of the live payload, by name."""
    obj = Marker(str(marker))
    out = {f"pickle_protocol_{p}": pickle.dumps({"fir": obj}, protocol=p) for p in (0, 2, 4, 5)}
    buf = io.BytesIO()
    torch.save({"fir": obj, "step": 1}, buf)
    out["torch_zip"] = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"fir": obj}, buf, _use_new_zipfile_serialization=False)
    out["torch_legacy"] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, np.array([obj, 1.0], dtype=object), allow_pickle=True)
    out["npy_object"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, fir=np.array([obj], dtype=object))
    out["npz_object"] = buf.getvalue()
    return out


def assert_live(blob: bytes, marker: Path) -> None:
    """The planted bytes do run code when unpickled on purpose (so the refusals mean something)."""
    assert not marker.exists()
    if blob.startswith(b"PK"):  # torch zip or npz
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            names = zf.namelist()
            torch_file = any(n.endswith("data.pkl") for n in names)
            if not torch_file:
                blob = zf.read(next(n for n in names if n.endswith(".npy")))
        if torch_file:  # its tensors need torch's unpickler: the unsafe load, on purpose
            try:
                torch.load(io.BytesIO(blob), weights_only=False)
            except Exception:  # noqa: BLE001 - the payload's return value is no valid state
                pass
            blob = b""
    if blob.startswith(b"\x93NUMPY"):
        np.load(io.BytesIO(blob), allow_pickle=True)
    else:
        stream = io.BytesIO(blob)  # legacy torch files are several pickles in a row
        while stream.tell() < len(blob) and not marker.exists():
            try:
                pickle.load(stream)
            except Exception:  # noqa: BLE001 - e.g. the raw tensor bytes after the legacy pickles
                break
    assert marker.is_dir(), "the payload did not execute when unpickled on purpose"
    marker.rmdir()


def refuses(call, marker: Path, one_line: bool = True) -> SpatialoptError:
    with pytest.raises(SpatialoptError) as info:
        call()
    assert not marker.exists(), "the loader executed the pickle payload"
    if one_line:
        assert "\n" not in str(info.value), str(info.value)
    return info.value


# ---------------------------------------------------------------------------------------------
# Filter set
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine_set(tmp_path_factory) -> Path:
    g = torch.Generator().manual_seed(0)
    fs = FilterSet.from_stages(
        ctc=torch.randn(2, 2, 8, generator=g), virtualizer=torch.randn(2, 4, generator=g),
        beam=torch.randn(2, 6, generator=g), lr_delay=1, c_delay=2, n_taps=16, sample_rate=48000.0,
        driver_names=["woofer", "tweeter"], latency_samples=3, upmix={"centre_gain": 0.7071},
        config={"listener": {"type": "sofa", "sofa_file": "hrtf.sofa"},
                "device": {"drivers": [{"name": "woofer", "model": "measured", "file": "woofer.npz"}]}})
    return fs.save(tmp_path_factory.mktemp("pristine") / "set")


@pytest.fixture
def fset_dir(pristine_set, tmp_path) -> Path:
    return Path(shutil.copytree(pristine_set, tmp_path / "set"))


def _rehash(directory: Path) -> None:
    data = (directory / TENSOR_FILE_NAME).read_bytes()
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest["files"]["tensors"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.parametrize("container", ["pickle_protocol_0", "pickle_protocol_2", "pickle_protocol_4",
                                       "pickle_protocol_5", "torch_zip", "torch_legacy", "npy_object", "npz_object"])
@pytest.mark.parametrize("where", [MANIFEST_NAME, TENSOR_FILE_NAME])
def test_filter_set_with_a_pickle_payload_is_refused(fset_dir, tmp_path, container, where):
    marker = tmp_path / "pwned"
    blob = payloads(marker)[container]
    (fset_dir / where).write_bytes(blob)
    if where == TENSOR_FILE_NAME:
        _rehash(fset_dir)  # size and hash agree: only the content is hostile
    error = refuses(lambda: FilterSet.load(fset_dir), marker)
    assert str(fset_dir) in str(error)
    assert_live(blob, marker)


def test_payload_in_safetensors_metadata_is_inert(fset_dir, tmp_path):
    """A pickle stream as a metadata string of an otherwise valid tensor file is never decoded."""
    import safetensors.torch

    marker = tmp_path / "pwned"
    blob = pickle.dumps(Marker(str(marker)), protocol=0).decode("latin-1")
    tensors = safetensors.torch.load((fset_dir / TENSOR_FILE_NAME).read_bytes())
    (fset_dir / TENSOR_FILE_NAME).write_bytes(safetensors.torch.save(tensors, metadata={"format": blob}))
    _rehash(fset_dir)
    FilterSet.load(fset_dir)  # loads: the metadata is not interpreted
    assert not marker.exists()


# --- paths in the manifest --------------------------------------------------------------------


class OpenLog:
    """Records the paths opened (``open`` audit events: builtins.open, io.open, os.open) while active."""

    def __init__(self):
        self.active, self.paths = False, []
        sys.addaudithook(self._hook)  # hooks cannot be removed; this one is inert when inactive

    def _hook(self, event, args):
        if self.active and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            self.paths.append(os.path.abspath(os.fsdecode(args[0])))


@pytest.fixture(scope="module")
def open_log() -> OpenLog:
    return OpenLog()


OUTSIDE = ["../outside.bin", "../../etc/passwd", "/etc/passwd", "/dev/zero", "sub/../../outside.bin", "..", "~/x",
           "C:\\Windows\\win.ini", "\\\\server\\share\\x", "file:///etc/passwd", "%2e%2e/outside.bin"]


def _path_fields(manifest: dict, value: str) -> dict[str, dict]:
    """Manifests with ``value`` in each path-like field: the file names under ``files`` (which the
    loader checks) and the design config's file paths (``listener.sofa_file``,
    ``device.drivers[].file``: recorded, never opened by the loader)."""
    out = {}
    for role in ("tensors", "export_wav_L", "camilladsp"):
        m = json.loads(json.dumps(manifest))
        m["files"][role] = dict(m["files"]["tensors"], name=value) if role == "tensors" else {"name": value}
        out[f"files.{role}.name"] = m
    m = json.loads(json.dumps(manifest))
    m["files"]["export_wav_R"] = value  # a bare string instead of {name: ...}
    out["files.export_wav_R"] = m
    m = json.loads(json.dumps(manifest))
    m["config"]["listener"]["sofa_file"] = value
    out["config.listener.sofa_file"] = m
    m = json.loads(json.dumps(manifest))
    m["config"]["device"]["drivers"][0]["file"] = value
    out["config.device.drivers[0].file"] = m
    return out


@pytest.mark.parametrize("value", OUTSIDE)
def test_manifest_paths_are_never_followed(fset_dir, tmp_path, open_log, value):
    """For every path-like field set to a path outside the set: the load opens exactly
    ``manifest.json`` and ``filters.safetensors`` of the set (audit hook), and either loads
    (free-form config, recorded only) or refuses with the project's error (``files`` names)."""
    (tmp_path / "outside.bin").write_bytes(b"outside")
    manifest = json.loads((fset_dir / MANIFEST_NAME).read_text())
    FilterSet.load(fset_dir)  # warm-up: lazy imports open module files
    allowed = {str(fset_dir / MANIFEST_NAME), str(fset_dir / TENSOR_FILE_NAME)}
    for field, changed in _path_fields(manifest, value).items():
        (fset_dir / MANIFEST_NAME).write_text(json.dumps(changed))
        open_log.paths.clear()
        open_log.active = True
        try:
            result = FilterSet.load(fset_dir)
        except SpatialoptError as exc:
            result = exc
        finally:
            open_log.active = False
        assert str(fset_dir / MANIFEST_NAME) in open_log.paths  # the hook sees the loader's opens
        assert set(open_log.paths) <= allowed, (field, value, open_log.paths)
        if field.startswith("files."):
            assert isinstance(result, SpatialoptError), (field, value)
            assert "unsafe or invalid file name" in str(result) or "expected 'filters.safetensors'" in str(result)
            assert str(fset_dir / TENSOR_FILE_NAME) not in open_log.paths  # refused before any tensor read
        else:
            assert isinstance(result, FilterSet), (field, value, result)
            assert result.config["listener"]["sofa_file"] == changed["config"]["listener"]["sofa_file"]


def test_symlinked_files_are_verified_not_trusted(fset_dir, tmp_path):
    """A symlink named ``filters.safetensors`` is followed (content-addressed stores such as DVC
    and git-annex use them), but only to a regular file whose bytes match the manifest's SHA-256;
    a link to a device, a FIFO or any other file is refused. The same holds for the manifest."""
    target = tmp_path / "elsewhere.safetensors"
    shutil.move(fset_dir / TENSOR_FILE_NAME, target)
    (fset_dir / TENSOR_FILE_NAME).symlink_to(target)
    FilterSet.load(fset_dir)  # same bytes as the manifest says
    other = tmp_path / "other.bin"
    other.write_bytes(target.read_bytes()[:-4] + b"\0\0\0\0")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, fragment in ((other, "SHA-256 mismatch"), (Path("/dev/zero"), "not a regular file"),
                          (fifo, "not a regular file"), (tmp_path, "not a regular file"),
                          (tmp_path / "missing", "not found|cannot stat")):
        for name in (TENSOR_FILE_NAME, MANIFEST_NAME):
            saved = (fset_dir / name).read_bytes()
            (fset_dir / name).unlink()
            (fset_dir / name).symlink_to(bad)
            with pytest.raises(SpatialoptError, match=fragment if name == TENSOR_FILE_NAME else "."):
                FilterSet.load(fset_dir)
            (fset_dir / name).unlink()
            (fset_dir / name).write_bytes(saved)


def _set_naming_a_sofa_file(sofa_file: Path) -> FilterSet:
    """A zero filter set whose stored design config names ``sofa_file`` as the listener's HRTFs."""
    cfg = make_config(listener="sofa", zone="point", n_fft=64)
    cfg["listener"]["sofa_file"] = str(sofa_file)
    names = [d["name"] for d in cfg["device"]["drivers"]]
    return FilterSet.from_stages(ctc=torch.zeros(2, len(names), 4), virtualizer=torch.zeros(2, 2),
                                 beam=torch.zeros(len(names), 4), lr_delay=0, c_delay=0, n_taps=8, sample_rate=48000.0,
                                 driver_names=names, latency_samples=0, config=cfg)


def test_preview_does_not_open_config_paths_outside_the_set(tmp_path, monkeypatch):
    import spatialopt.acoustics.sofa as sofa
    from spatialopt.errors import DataError
    from spatialopt.preview import binaural_filters

    fs = _set_naming_a_sofa_file(tmp_path / "outside" / "hrtf.sofa")
    opened = []

    def spy(path, convention):
        opened.append(path)
        raise DataError(f"{path}: spied")

    monkeypatch.setattr(sofa, "open_sofa", spy)
    with pytest.raises(SpatialoptError):
        binaural_filters(fs)
    assert opened == [], f"the preview opened {opened}, named by the filter set's config"


# ---------------------------------------------------------------------------------------------
# Scene and measured-directivity archives (.npz)
# ---------------------------------------------------------------------------------------------


def _measured_arrays() -> dict[str, np.ndarray]:
    return dict(freqs=np.array([100.0, 1000.0]), pattern=np.ones((2, 4), dtype=complex),
                azimuth_deg=np.array([0.0, 90.0, 180.0, -90.0]), elevation_deg=np.zeros(4))


def _load_scene(path):
    from spatialopt.acoustics.scene import Scene

    return Scene.load_npz(path)


def _load_measured(path):
    from spatialopt.acoustics.measured import load_directivity

    return load_directivity(str(path))


NPZ_LOADERS = {"scene": (small_scene_arrays, _load_scene), "measured": (_measured_arrays, _load_measured)}


@pytest.mark.parametrize("loader", sorted(NPZ_LOADERS))
def test_valid_archives_load(tmp_path, loader):
    make, load = NPZ_LOADERS[loader]
    path = tmp_path / "ok.npz"
    arrays = make()
    np.savez(path, **arrays)
    loaded = load(path)
    freqs = loaded.freqs if loader == "scene" else loaded["freqs"]
    np.testing.assert_allclose(np.asarray(freqs), arrays["freqs"], rtol=1e-12)  # the archive's own values


@pytest.mark.parametrize("loader", sorted(NPZ_LOADERS))
@pytest.mark.parametrize("how", ["object_member", "object_member_compressed", "whole_file_pickle", "npy_object",
                                 "torch_zip"])
def test_npz_with_a_pickle_payload_is_refused(tmp_path, loader, how):
    make, load = NPZ_LOADERS[loader]
    marker = tmp_path / "pwned"
    arrays = make()
    path = tmp_path / "hostile.npz"
    if how.startswith("object_member"):
        for key in list(arrays)[:3] + ["driver_names" if loader == "scene" else "elevation_deg"]:
            arrays[key] = np.array([Marker(str(marker)), 1.0], dtype=object)
            (np.savez_compressed if how.endswith("compressed") else np.savez)(path, **arrays)
            refuses(lambda: load(path), marker)
            arrays = make()
        with zipfile.ZipFile(path) as zf:
            blob = zf.read(next(n for n in zf.namelist() if n.startswith("driver_names") or n.startswith("elevation")))
    else:
        blob = payloads(marker)[{"whole_file_pickle": "pickle_protocol_4", "npy_object": "npy_object",
                                 "torch_zip": "torch_zip"}[how]]
        path.write_bytes(blob)
        refuses(lambda: load(path), marker)
    assert_live(blob, marker)


# ---------------------------------------------------------------------------------------------
# SOFA (HDF5): h5py never unpickles; pickle bytes stored as opaque data, variable-length strings
# or attributes are refused as non-numeric or wrong, and a pickle file is not HDF5
# ---------------------------------------------------------------------------------------------


def _write_hrir(path, **override):
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = "SOFA"
        f.attrs["SOFAConventions"] = override.pop("convention", "SimpleFreeFieldHRIR")
        ir = np.zeros((2, 2, 8))
        ir[:, :, 2] = 1.0
        values = {"Data.IR": ir, "Data.SamplingRate": np.array([48000.0]),
                  "SourcePosition": np.array([[30.0, 0.0, 1.5], [-30.0, 0.0, 1.5]])}
        values.update(override)
        for key, value in values.items():
            if callable(value):
                value(f, key)
            else:
                f[key] = value
        if "Type" not in f["SourcePosition"].attrs and isinstance(f["SourcePosition"], h5py.Dataset):
            f["SourcePosition"].attrs["Type"] = "spherical"
            f["SourcePosition"].attrs["Units"] = "degree, degree, metre"


def _write_tf(path, **override):
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = "SOFA"
        f.attrs["SOFAConventions"] = override.pop("convention", "FreeFieldDirectivityTF")
        values = {"Data.Real": np.ones((1, 4, 2)), "Data.Imag": np.zeros((1, 4, 2)), "N": np.array([100.0, 1000.0]),
                  "ReceiverPosition": np.array([[0.0, 0.0, 2.0], [90.0, 0.0, 2.0], [180.0, 0.0, 2.0], [-90.0, 0.0, 2.0]])}
        values.update(override)
        for key, value in values.items():
            if callable(value):
                value(f, key)
            else:
                f[key] = value
        if isinstance(f["ReceiverPosition"], h5py.Dataset):
            f["ReceiverPosition"].attrs["Type"] = "spherical"


def _opaque(blob):
    def put(f, key):
        f[key] = np.void(blob)  # HDF5 opaque type holding the pickle bytes
    return put


def _vlen_bytes(blob):
    def put(f, key):
        ds = f.create_dataset(key, (1,), dtype=h5py.vlen_dtype(np.dtype("uint8")))
        ds[0] = np.frombuffer(blob, dtype=np.uint8)
    return put


def _vlen_str(blob):
    def put(f, key):
        f.create_dataset(key, data=[blob], dtype=h5py.string_dtype("ascii"))
    return put


def _load_hrir(path):
    from spatialopt.acoustics.sofa import SofaListener

    return SofaListener.from_file(str(path))


SOFA_CASES = {
    "hrir_ir_opaque": (_write_hrir, _load_hrir, "Data.IR", _opaque),
    "hrir_ir_vlen": (_write_hrir, _load_hrir, "Data.IR", _vlen_bytes),
    "hrir_rate_vlen_str": (_write_hrir, _load_hrir, "Data.SamplingRate", _vlen_str),
    "hrir_positions_opaque": (_write_hrir, _load_hrir, "SourcePosition", _opaque),
    "hrir_convention_attr": (_write_hrir, _load_hrir, "convention", None),
    "tf_real_opaque": (_write_tf, _load_measured, "Data.Real", _opaque),
    "tf_freqs_vlen": (_write_tf, _load_measured, "N", _vlen_bytes),
    "tf_receivers_vlen_str": (_write_tf, _load_measured, "ReceiverPosition", _vlen_str),
    "tf_convention_attr": (_write_tf, _load_measured, "convention", None),
}


@pytest.mark.parametrize("case", sorted(SOFA_CASES))
def test_sofa_with_a_pickle_payload_is_refused(tmp_path, case):
    write, load, key, how = SOFA_CASES[case]
    marker = tmp_path / "pwned"
    blob = pickle.dumps(Marker(str(marker)), protocol=0)
    path = tmp_path / "hostile.sofa"
    if key == "convention":
        write(path, convention=np.void(blob))
    else:
        write(path, **{key: how(blob)})
    refuses(lambda: load(path), marker)
    assert_live(blob, marker)


@pytest.mark.parametrize("load", [_load_hrir, _load_measured])
def test_pickle_file_named_sofa_is_refused(tmp_path, load):
    marker = tmp_path / "pwned"
    blob = payloads(marker)["pickle_protocol_4"]
    path = tmp_path / "hostile.sofa"
    path.write_bytes(blob)
    error = refuses(lambda: load(path), marker)
    assert "not HDF5" in str(error)
    assert_live(blob, marker)


def test_sofa_bases_are_valid(tmp_path):
    _write_hrir(tmp_path / "a.sofa")
    _write_tf(tmp_path / "b.sofa")
    listener = _load_hrir(tmp_path / "a.sofa")
    assert listener.sample_rate == 48000.0 and tuple(listener.hrir.shape) == (2, 2, 8)
    measured = _load_measured(tmp_path / "b.sofa")
    np.testing.assert_allclose(measured["freqs"].numpy(), [100.0, 1000.0], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Checkpoints: Trainer.load_checkpoint uses torch.load(..., weights_only=True)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def trainer(tmp_path):
    from spatialopt.design.system import SpatialSystem, SystemShape
    from spatialopt.train import OptimConfig, Trainer

    shape = SystemShape(n_drivers=2, n_taps=32, ctc_taps=16, beam_taps=16, virtualizer_taps=8, allpass_sections=1)
    system = SpatialSystem(shape, 48000.0)
    t = Trainer(system, None, OptimConfig(steps=1), tmp_path / "run", progress=False)
    t.checkpoint_path.parent.mkdir(parents=True)
    return t


def test_a_genuine_checkpoint_loads(trainer):
    trainer.save_checkpoint()
    assert trainer.load_checkpoint()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 5")
@pytest.mark.parametrize("how", ["torch_zip", "torch_legacy", "pickle_protocol_2", "pickle_protocol_5", "nested"])
def test_checkpoint_with_a_pickle_payload_is_refused(trainer, tmp_path, how):
    marker = tmp_path / "pwned"
    if how == "nested":  # a genuine checkpoint with the payload hidden in the optimizer state
        trainer.save_checkpoint()
        state = torch.load(trainer.checkpoint_path, weights_only=True)
        state["optimizer"]["param_groups"][0]["hook"] = Marker(str(marker))
        buf = io.BytesIO()
        torch.save(state, buf)
        blob = buf.getvalue()
    else:
        blob = payloads(marker)[how]
    trainer.checkpoint_path.write_bytes(blob)
    # (torch's refusal spans several lines and Trainer passes it on as is: reported)
    error = refuses(trainer.load_checkpoint, marker, one_line=False)
    assert "cannot resume from checkpoint" in str(error)
    assert trainer.step == 0
    assert_live(blob, marker)


def test_evaluate_does_not_open_stored_config_paths_unless_trusted(tmp_path, monkeypatch):
    """spatialopt-evaluate on a handed-over filter set whose config names a SOFA file: refused with
    one message naming the key, and the file is never opened; overriding the group is allowed."""
    import spatialopt.acoustics.sofa as sofa
    from spatialopt.cli.evaluate import evaluate
    from spatialopt.errors import ConfigError

    path = _set_naming_a_sofa_file(tmp_path / "elsewhere" / "hrtf.sofa").save(tmp_path / "set")
    opened = []
    monkeypatch.setattr(sofa, "open_sofa", lambda p, c: opened.append(p))
    with pytest.raises(ConfigError, match="trust_config_paths.*listener.sofa_file="):
        evaluate([f"filterset={path}", f"out={tmp_path / 'm.json'}"])
    assert opened == [] and not (tmp_path / "m.json").exists()
