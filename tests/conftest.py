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
