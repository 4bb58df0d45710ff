"""Shared fixtures: config mappings loaded from the repository's conf/ directory."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

CONF = Path(__file__).resolve().parents[1] / "conf"


def load_group(group: str, name: str) -> dict:
    """One config-group YAML as a plain dict."""
    return yaml.safe_load((CONF / group / f"{name}.yaml").read_text())


def make_config(device="smart_speaker_5", listener="sphere_head", zone="point", room="free", n_fft=64, **top) -> dict:
    """A top-level config mapping as the CLI would pass it (small FFT by default, for speed)."""
    scene = load_group("scene", "default")
    scene["n_fft"] = n_fft
    cfg = {
        "fs": 48000,
        "scene": scene,
        "device": load_group("device", device),
        "listener": load_group("listener", listener),
        "zone": load_group("zone", zone),
        "room": load_group("room", room),
    }
    cfg.update(top)
    return copy.deepcopy(cfg)


def small_scene_arrays(nominal_index: int = 0) -> dict:
    """The arrays of a tiny valid scene archive (4 frequencies, 2 points, 2 drivers, random
    transfer values; ``Scene.load_npz`` accepts them), for loader tests that mutate them."""
    import numpy as np

    rng = np.random.default_rng(0)
    c = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)  # noqa: E731
    return dict(freqs=np.linspace(0, 24000, 4), H=c(4, 2, 2, 2), points=rng.random((2, 4)), point_weights=np.ones(2),
                G_ring=c(4, 3, 2), ring_az=rng.random(3), G_sphere=c(4, 3, 2), sphere_dirs=rng.random((3, 2)),
                sphere_weights=np.ones(3), H_ref=c(4, 2, 2, 2), driver_positions=rng.random((2, 3)),
                driver_bands=rng.random((2, 2)), driver_names=np.array(["a", "b"]),
                nominal_index=np.array(nominal_index), sample_rate=np.array(48000.0), speed_of_sound=np.array(343.0))


@pytest.fixture
def config_factory():
    return make_config


@pytest.fixture(scope="module")
def single_thread():
    """Small tensors: one intra-op thread is as fast, and immune to OpenMP stalls on a busy CPU
    (measured: a 16-point rfft takes 8 µs on one thread, 8 ms on two when the cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_render_set(directory: Path, seed: int = 3, n_taps: int = 200, sample_rate: int = 48000):
    """A small random filter set for the smart_speaker_5 design scene (5 drivers, ``n_taps`` taps,
    its config stored), saved under ``directory``: returns (FilterSet, saved path). The same
    construction as ``tests/cli/test_render_cli.py``'s ``saved_set``."""
    import math

    from spatialopt.filterset import FilterSet

    cfg = make_config(zone="point", n_fft=256)
    names = [d["name"] for d in cfg["device"]["drivers"]]
    g = torch.Generator().manual_seed(seed)
    fset = FilterSet.from_stages(
        ctc=0.1 * torch.randn(2, len(names), 120, generator=g), virtualizer=torch.randn(2, 16, generator=g) / 4,
        beam=0.1 * torch.randn(len(names), 100, generator=g), lr_delay=5, c_delay=30, n_taps=n_taps,
        sample_rate=sample_rate, driver_names=names, latency_samples=60, upmix={"centre_gain": math.sqrt(0.5)},
        config=cfg)
    return fset, fset.save(Path(directory) / "filterset")


@pytest.fixture(scope="session")
def render_set(tmp_path_factory):
    """:func:`make_render_set` once per session (the render CLI tests' filter set)."""
    return make_render_set(tmp_path_factory.mktemp("render_set"))
