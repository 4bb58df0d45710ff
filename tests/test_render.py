"""The batched streaming renderer (DESIGN.md §7): exact convolution, streaming == offline for any
block size and chunking, state, batch consistency, float64, clear errors, CUDA == CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatialopt.errors import DataError
from spatialopt.filterset import FilterSet
from spatialopt.render import (
    SMALL_ROWS,
    Renderer,
    default_offline_block_size,
    fdl_matrix,
    fdl_spectra,
    partition_filters,
    render_offline,
)

signal = pytest.importorskip("scipy.signal")

pytestmark = pytest.mark.usefixtures("single_thread")  # small FFTs: no OpenMP stalls on a busy CPU


def make_filterset(n_taps: int, n_drivers: int, seed: int = 0, latency: int = 12) -> FilterSet:
    """A random filter set whose composite fills all ``n_taps`` taps (stages sized to fit)."""
    g = torch.Generator().manual_seed(seed)
    lr_delay, c_delay = n_taps // 20, n_taps // 10
    t_v = max(2, n_taps // 5)
    t_ctc = n_taps - lr_delay - t_v + 1
    return FilterSet.from_stages(
        ctc=torch.randn(2, n_drivers, t_ctc, generator=g) / t_ctc**0.5,
        virtualizer=torch.randn(2, t_v, generator=g) / t_v**0.5,
        beam=torch.randn(n_drivers, n_taps - c_delay, generator=g) / n_taps**0.5,
        lr_delay=lr_delay, c_delay=c_delay, n_taps=n_taps, sample_rate=48000.0,
        driver_names=[f"d{i}" for i in range(n_drivers)], latency_samples=latency,
    )


def reference(fir: torch.Tensor, x: np.ndarray) -> np.ndarray:
    """float64 direct reference: y[b, d] = Σ_c fftconvolve(x[b, c], h[c, d])[:S]."""
    h = fir.double().numpy()
    s = x.shape[-1]
    y = signal.fftconvolve(x[:, :, None, :].astype(np.float64), h[None, :, :, :], axes=-1)[..., :s]
    return y.sum(axis=1)


def rel_err(y, ref) -> float:
    y = y.detach().cpu().double().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=np.float64)
    ref = ref.detach().cpu().double().numpy() if isinstance(ref, torch.Tensor) else ref
    assert y.shape == ref.shape, (y.shape, ref.shape)
    return float(np.abs(y - ref).max() / np.abs(ref).max())


def noise(b: int, c: int, s: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, c, s)).astype(np.float32)


def stream(renderer: Renderer, x, lengths) -> torch.Tensor:
    """Feed ``x`` (B, C, S) through ``renderer`` in calls of the given lengths (the rest last)."""
    out, pos = [], 0
    for n in lengths:
        out.append(renderer.process(x[:, :, pos: pos + n]))
        pos += n
    out.append(renderer.process(x[:, :, pos:]))
    return torch.cat(out, dim=-1)


def chunking(total: int, block: int, seed: int) -> list[int]:
    """Random call lengths summing to at most ``total``: zeros, single samples, block ± 1 and
    arbitrary lengths not multiples of the block."""
    rng = np.random.default_rng(seed)
    pool = [0, 1, 2, max(1, block - 1), block, block + 1, 2 * block + 3]
    lengths, left = [], total
    while left > 0:
        n = int(rng.choice(pool)) if rng.random() < 0.6 else int(rng.integers(0, min(left, 3 * block + 50) + 1))
        n = min(n, left)
        lengths.append(n)
        left -= n
    return lengths


# --------------------------------------------------------------------------------------------
# Exactness against a direct float64 convolution
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_taps, n_drivers, batch", [(100, 2, 1), (257, 5, 3), (257, 3, 2), (101, 4, SMALL_ROWS + 1)])
def test_offline_matches_direct_convolution(n_taps, n_drivers, batch):
    fs = make_filterset(n_taps, n_drivers, seed=n_taps + n_drivers)
    x = noise(batch, 3, 3001, seed=batch)
    y = render_offline(fs, x, upmix=False, device="cpu")
    assert y.shape == (batch, n_drivers, 3001) and y.dtype == torch.float32 and y.device.type == "cpu"
    assert rel_err(y, reference(fs.fir, x)) < 1e-5


def test_float64_matches_reference():
    fs = make_filterset(257, 4, seed=3)
    x = np.random.default_rng(5).standard_normal((2, 3, 2500))  # float64 samples
    for block in (64, None):
        y = render_offline(fs, x, upmix=False, block_size=block, device="cpu", dtype=torch.float64)
        assert y.dtype == torch.float64
        assert rel_err(y, reference(fs.fir, x)) < 1e-10
    ren = Renderer(fs, block_size=37, device="cpu", upmix=False, dtype=torch.float64)
    assert rel_err(stream(ren, x, chunking(2500, 37, seed=4)), reference(fs.fir, x)) < 1e-10


# --------------------------------------------------------------------------------------------
# Streaming == offline
# --------------------------------------------------------------------------------------------

STREAM_FS = make_filterset(300, 3, seed=7)
STREAM_X = noise(SMALL_ROWS, 3, 5000, seed=8)


@pytest.fixture(scope="module")
def stream_ref(single_thread) -> torch.Tensor:
    """Offline rendering of STREAM_X (default block size), checked against the direct reference."""
    ref = render_offline(STREAM_FS, STREAM_X, upmix=False, device="cpu")
    assert rel_err(ref, reference(STREAM_FS.fir, STREAM_X)) < 1e-5
    return ref


@pytest.mark.parametrize("batch", [2, SMALL_ROWS])  # both FDL layouts (broadcast / GEMM paths)
@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 256, 1000, 4096])
def test_streaming_equals_offline(block, batch, stream_ref):
    x = STREAM_X[:batch]
    ref = stream_ref[:batch]
    ren = Renderer(STREAM_FS, block_size=block, device="cpu", upmix=False)
    assert rel_err(ren.process(x), ref) < 1e-6  # one call
    for seed in (block, block + 1):
        ren.reset()
        assert rel_err(stream(ren, x, chunking(x.shape[-1], block, seed)), ref) < 1e-6


@pytest.mark.parametrize("batch", [2, SMALL_ROWS])
@pytest.mark.parametrize("chunk_samples", [1, 3 * 2 * 32 * 6 * SMALL_ROWS])
def test_small_chunks_and_fdl_wraparound(monkeypatch, stream_ref, batch, chunk_samples):
    """Calls split into chunks of 1 (or a few) blocks; the FDL buffer wraps around constantly."""
    import spatialopt.render as render

    monkeypatch.setattr(render, "CHUNK_SAMPLES", chunk_samples)
    ren = Renderer(STREAM_FS, block_size=32, device="cpu", upmix=False)  # P = 10 partitions
    y = stream(ren, STREAM_X[:batch], [1000, 5, 0, 31, 1])
    assert rel_err(y, stream_ref[:batch]) < 1e-6


def test_streaming_many_tiny_calls_and_exact_block_calls(stream_ref):
    x = STREAM_X[:1, :, :700]
    ref = stream_ref[:1, :, :700]
    ren = Renderer(STREAM_FS, block_size=16, device="cpu", upmix=False)
    assert rel_err(stream(ren, x, [1] * 300 + [16] * 20), ref) < 1e-6


def test_output_is_causal():
    x = noise(1, 3, 2000, seed=11)
    y = render_offline(STREAM_FS, x, upmix=False, block_size=128, device="cpu")
    x2 = x.copy()
    x2[:, :, 1234:] = np.random.default_rng(0).standard_normal(x2[:, :, 1234:].shape)
    y2 = render_offline(STREAM_FS, x2, upmix=False, block_size=128, device="cpu")
    # equal up to float rounding (the changed block's FFT spreads rounding over the whole block)
    torch.testing.assert_close(y2[..., :1234], y[..., :1234], rtol=0, atol=1e-6 * float(y.abs().max()))
    assert not torch.allclose(y2[..., 1234:], y[..., 1234:])


# --------------------------------------------------------------------------------------------
# State, batch, shapes
# --------------------------------------------------------------------------------------------


def test_impulse_split_across_calls_gives_the_taps():
    fs = make_filterset(100, 3, seed=2)
    x = np.zeros((1, 3, 400), dtype=np.float32)
    x[0, 2, 5] = 1.0  # unit impulse in C at sample 5
    ren = Renderer(fs, block_size=16, device="cpu", upmix=False)
    y = stream(ren, x, [3, 4, 0, 9, 50])  # the impulse lands in the second call
    assert y.shape == (1, 3, 400)
    torch.testing.assert_close(y[0, :, 5:105], fs.fir[2], rtol=0, atol=1e-6)
    assert float(y[0, :, :5].abs().max()) < 1e-6 and float(y[0, :, 105:].abs().max()) < 1e-6  # rounding only


def test_reset_gives_a_fresh_renderer():
    x = STREAM_X[:2, :, :1500]
    ren = Renderer(STREAM_FS, block_size=64, device="cpu", upmix=False)
    first = stream(ren, x, [100, 37])
    ren.process(STREAM_X[:2, :, 2000:2300])  # more state
    ren.reset()
    again = stream(ren, x, [100, 37])
    fresh = stream(Renderer(STREAM_FS, block_size=64, device="cpu", upmix=False), x, [100, 37])
    torch.testing.assert_close(again, fresh, rtol=0, atol=0)
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    ren.reset()
    assert ren.process(STREAM_X[:5, :, :10]).shape == (5, 3, 10)  # a new batch size after reset


@pytest.mark.parametrize("batch", [3, SMALL_ROWS + 1])
def test_batch_equals_items_alone(batch):
    x = noise(batch, 3, 1200, seed=batch)
    together = stream(Renderer(STREAM_FS, block_size=32, device="cpu", upmix=False), x, [50, 200])
    for i in range(batch):
        alone = stream(Renderer(STREAM_FS, block_size=32, device="cpu", upmix=False), x[i: i + 1], [50, 200])
        assert rel_err(together[i: i + 1], alone) < 1e-6


def test_empty_calls_numpy_input_and_properties():
    fs = make_filterset(100, 2, seed=4, latency=33)
    ren = Renderer(fs, block_size=64, device="cpu", upmix=False)
    assert ren.latency_samples == 33 and ren.n_partitions == 2 and ren.n_inputs == 3
    empty = ren.process(np.zeros((2, 3, 0)))
    assert empty.shape == (2, 2, 0) and isinstance(empty, torch.Tensor)
    y = ren.process(np.random.default_rng(0).standard_normal((2, 3, 10)))  # float64 numpy → float32
    assert y.shape == (2, 2, 10) and y.dtype == torch.float32
    with pytest.raises(DataError, match="batch size changed from 2 to 1"):
        ren.process(np.zeros((1, 3, 0), dtype=np.float32))


def test_default_offline_block_size():
    assert default_offline_block_size(1024) == 1024
    assert default_offline_block_size(1025) == 2048
    assert default_offline_block_size(100) == 256


def test_both_hot_path_forms_agree():
    fs = make_filterset(100, 3, seed=9)
    H = partition_filters(fs.fir, 32)
    assert H.shape == (4, 3, 3, 33) and H.dtype == torch.complex64
    X = torch.randn(2, 4, 3, 33, dtype=torch.complex64)  # (B, P frames oldest first, C, F)
    direct = torch.einsum("bpcf,pcdf->bdf", X, H.flip(0)) / 64
    gemm = torch.view_as_complex((torch.view_as_real(X.permute(3, 0, 1, 2)).reshape(33, 2, 24) @ fdl_matrix(H))
                                 .view(33, 2, 3, 2)).permute(1, 2, 0)
    bcast = (X.reshape(2, 1, 12, 33) * fdl_spectra(H)).sum(-2)
    torch.testing.assert_close(gemm, direct, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bcast, direct, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_bad_input_raises_one_clear_error():
    fs = make_filterset(100, 2, seed=5)
    ren = Renderer(fs, block_size=64, device="cpu", upmix=False)
    with pytest.raises(DataError, match=r"\(B, 3, S\) in the order L, R, C \(upmix=False\), got shape \(1, 2, 10\)"):
        ren.process(np.zeros((1, 2, 10), dtype=np.float32))
    with pytest.raises(DataError, match=r"got shape \(3, 10\)"):
        ren.process(np.zeros((3, 10), dtype=np.float32))
    with pytest.raises(DataError, match="floating point.*int16"):
        ren.process(np.zeros((1, 3, 10), dtype=np.int16))
    with pytest.raises(DataError, match="floating point.*torch.int64"):
        ren.process(torch.zeros(1, 3, 10, dtype=torch.int64))
    bad = np.zeros((1, 3, 10), dtype=np.float32)
    bad[0, 1, 4] = np.nan
    with pytest.raises(DataError, match="NaN or Inf"):
        ren.process(bad)
    bad[0, 1, 4] = np.inf
    with pytest.raises(DataError, match="NaN or Inf"):
        ren.process(torch.from_numpy(bad))
    ren.process(np.zeros((1, 3, 10), dtype=np.float32))
    with pytest.raises(DataError, match=r"batch size changed from 1 to 2; call reset\(\)"):
        ren.process(np.zeros((2, 3, 10), dtype=np.float32))
    ren.process(np.full((1, 3, 4), 3e38, dtype=np.float32))  # finite samples whose sum overflows: accepted
    with pytest.raises(DataError, match="block_size must be a positive integer"):
        Renderer(fs, block_size=0, device="cpu", upmix=False)


# --------------------------------------------------------------------------------------------
# Upmix, CUDA
# --------------------------------------------------------------------------------------------


def _has_upmixer() -> bool:
    try:
        from spatialopt.dsp import upmix
    except ImportError:
        return False
    return hasattr(upmix, "Upmixer")


@pytest.mark.skipif(not _has_upmixer(), reason="spatialopt.dsp.upmix.Upmixer not available yet")
def test_upmix_streaming_equals_offline():
    fs = make_filterset(257, 3, seed=6)
    x = noise(2, 2, 6000, seed=12)
    ref = render_offline(fs, x, upmix=True, device="cpu")
    ren = Renderer(fs, block_size=128, device="cpu", upmix=True)
    assert ren.n_inputs == 2 and ren.latency_samples >= fs.latency_samples
    y = stream(ren, x, chunking(6000, 128, seed=3))
    assert y.shape == (2, 3, 6000)
    assert rel_err(y, ref) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("batch", [2, SMALL_ROWS + 1])
def test_cuda_matches_cpu(batch):
    fs = make_filterset(300, 5, seed=10)
    x = noise(batch, 3, 4000, seed=13)
    cpu = stream(Renderer(fs, block_size=64, device="cpu", upmix=False), x, chunking(4000, 64, seed=1))
    ren = Renderer(fs, block_size=64, device="cuda", upmix=False)
    gpu = stream(ren, torch.from_numpy(x).cuda(), chunking(4000, 64, seed=1))
    assert gpu.device.type == "cuda"
    assert rel_err(gpu, cpu) < 1e-5
    assert rel_err(render_offline(fs, x, upmix=False, device="cuda"), reference(fs.fir, x)) < 1e-5
