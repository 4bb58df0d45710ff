"""Left–right mirror symmetry (``spatialopt.design.symmetry``): detection on the scene's transfer
tensors, the projection onto symmetric filters, and the system and experiment that use it.

References: the reflection y → −y applied by hand to driver positions, zone points and ring
azimuths; the symmetric-subspace projection's defining properties (idempotent, orthogonal,
identity on symmetric filters); exact equality of mirrored composite columns.
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_config
from spatialopt.config import scene_from_config
from spatialopt.design.symmetry import mirror_beam, mirror_ctc, mirror_permutation
from spatialopt.design.system import SpatialSystem, SystemShape

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("single_thread")


def _scene(device="smart_speaker_5", **changes):
    cfg = make_config(device=device, zone="default", n_fft=64)
    cfg["scene"].update(ring_count=72, sphere_order=8)
    for group, values in changes.items():
        cfg[group].update(values)
    return scene_from_config(cfg)


@pytest.mark.parametrize("device, expected", [
    ("smart_speaker_5", [0, 2, 1, 3, 4]),  # mid_left ↔ mid_right; tweeter, mid_top, woofer on the plane
    ("soundbar_4", [3, 2, 1, 0]),
    ("stereo_pair", [1, 0]),
])
def test_symmetric_devices_are_found_with_their_pairs(device, expected):
    scene = _scene(device)
    perm = mirror_permutation(scene)
    assert perm == expected
    # the permutation is the reflection of the driver positions (1 µm)
    mirrored = scene.driver_positions.to(F64) * torch.tensor([1.0, -1.0, 1.0], dtype=F64)
    torch.testing.assert_close(mirrored, scene.driver_positions.to(F64)[perm], atol=1e-6, rtol=0)


def test_a_room_with_the_device_on_its_centre_line_stays_symmetric():
    cfg = make_config(zone="default", room="living_room", n_fft=64)
    cfg["scene"].update(ring_count=72, sphere_order=8)
    cfg["room"]["max_order"] = 1
    assert mirror_permutation(scene_from_config(cfg)) == [0, 2, 1, 3, 4]
    cfg["room"]["device_position"] = [1.0, 1.7, 1.0]  # off the centre line: the side walls differ
    assert mirror_permutation(scene_from_config(cfg)) is None


@pytest.mark.parametrize("what", ["zone", "nominal_off_plane", "driver", "listener"])
def test_any_asymmetry_means_no_mirror(what):
    if what == "zone":
        scene = _scene(zone={"lateral": [-0.05, 0.0, 0.06]})
    elif what == "nominal_off_plane":  # a symmetric zone without a centre point: the ±30° pair is placed off-plane
        scene = _scene(zone={"lateral": [-0.05, 0.05]})
    elif what == "driver":
        cfg = make_config(zone="default", n_fft=64)
        cfg["scene"].update(ring_count=72, sphere_order=8)
        cfg["device"]["drivers"][1]["azimuth"] += 1.0  # mid_left turned 1° off its mirror image
        scene = scene_from_config(cfg)
    else:
        scene = _scene(listener={})
        scene.H[:, :, 0] *= 1.001  # a left ear 0.01 dB louder than the right (a measured HRTF set)
    assert mirror_permutation(scene) is None


def test_the_projection_is_the_orthogonal_projection_onto_symmetric_filters():
    perm = [0, 2, 1, 3, 4]
    g = torch.Generator().manual_seed(0)
    ctc, other = torch.randn(2, 5, 16, generator=g, dtype=F64), torch.randn(2, 5, 16, generator=g, dtype=F64)
    sym = mirror_ctc(ctc, perm)
    torch.testing.assert_close(sym[1], sym[0][perm], rtol=0, atol=0)  # C_r[d] = C_l[m(d)] exactly
    torch.testing.assert_close(mirror_ctc(sym, perm), sym, rtol=0, atol=1e-15)  # idempotent
    # orthogonal: the residual is orthogonal to every symmetric stage (1e-12 of the norms)
    residual = ctc - sym
    assert abs(float((residual * mirror_ctc(other, perm)).sum())) < 1e-12 * float(ctc.norm() * other.norm())
    beam = torch.randn(5, 16, generator=g, dtype=F64)
    b = mirror_beam(beam, perm)
    torch.testing.assert_close(b, b[perm], rtol=0, atol=0)
    torch.testing.assert_close(mirror_beam(b, perm), b, rtol=0, atol=0)
    assert abs(float(((beam - b) * mirror_beam(torch.randn(5, 16, generator=g, dtype=F64), perm)).sum())) < 1e-12 * 100


def test_projection_gradients():
    perm = [3, 2, 1, 0]
    ctc = torch.randn(2, 4, 6, dtype=F64, requires_grad=True)
    beam = torch.randn(4, 6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: mirror_ctc(c, perm), (ctc,))
    assert torch.autograd.gradcheck(lambda b: mirror_beam(b, perm), (beam,))


def test_mirrored_system_exports_mirrored_columns():
    """With the mirror set, the composite's R column is its L column with mirrored drivers and the
    C column is mirror-symmetric, exactly (the projection acts before the composition)."""
    shape = SystemShape(n_drivers=5, n_taps=64, ctc_taps=32, beam_taps=16, virtualizer_taps=16)
    system = SpatialSystem(shape, 48000.0).to(F64)
    with torch.no_grad():
        system.ctc.normal_(generator=torch.Generator().manual_seed(1))
        system.beam.normal_(generator=torch.Generator().manual_seed(2))
    free = system.composite().detach()
    assert float((free[1] - free[0][[0, 2, 1, 3, 4]]).abs().max()) > 0.1  # random filters are not symmetric
    system.set_mirror([0, 2, 1, 3, 4])
    fir = system.composite().detach()
    torch.testing.assert_close(fir[1], fir[0][[0, 2, 1, 3, 4]], rtol=0, atol=1e-12)
    torch.testing.assert_close(fir[2], fir[2][[0, 2, 1, 3, 4]], rtol=0, atol=0)
    # the state dict is unchanged in shape (checkpoints and resume work as without the mirror)
    assert {k: tuple(v.shape) for k, v in system.state_dict().items()}["ctc"] == (2, 5, 32)
    with pytest.raises(ValueError, match="not an involution"):
        system.set_mirror([1, 2, 0, 3, 4])


def test_experiment_with_symmetry(tmp_path):
    """system.symmetry=auto on a symmetric scene exports mirror-symmetric filters;
    =mirror on an asymmetric zone is refused naming the key; a bad mode is refused up front."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from spatialopt.cli._common import CONF_DIR
    from spatialopt.errors import ConfigError
    from spatialopt.experiment import run_experiment
    from spatialopt.filterset import FilterSet

    def config(*overrides):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return OmegaConf.to_container(compose("config", overrides=["+experiment=debug", *overrides]), resolve=True)

    logged = []
    # (the debug zone [-5, +5] cm has no centre point: its nominal point, where the reference pair is
    # placed, is off the symmetry plane, and that scene is rightly found asymmetric)
    run_experiment(config("system.symmetry=auto", "optim.steps=4", "zone.lateral=[-0.05,0.0,0.05]"), tmp_path / "run",
                   progress=False, log=logged.append)
    assert any("symmetry: mirror (pairs: mid_left↔mid_right" in str(line) for line in logged)
    fset = FilterSet.load(tmp_path / "run" / "filterset")
    perm = [0, 2, 1, 3, 4]
    peak = float(fset.fir.abs().max())
    torch.testing.assert_close(fset.fir[1], fset.fir[0][perm], rtol=0, atol=1e-6 * peak)
    torch.testing.assert_close(fset.stages["ctc"][1], fset.stages["ctc"][0][perm], rtol=0, atol=0)
    torch.testing.assert_close(fset.stages["beam"], fset.stages["beam"][perm], rtol=0, atol=0)
    with pytest.raises(ConfigError, match=r"^system\.symmetry='mirror': the scene .* is not left–right mirror-symmetric"):
        run_experiment(config("system.symmetry=mirror", "zone.lateral=[-0.05,0.06]"), tmp_path / "asym", progress=False,
                       log=lambda *_: None)
    with pytest.raises(ConfigError, match=r"^system\.symmetry='sideways': must be one of none, mirror, auto"):
        run_experiment(config("system.symmetry=sideways"), tmp_path / "bad", progress=False, log=lambda *_: None)
    assert not (tmp_path / "bad").exists()
