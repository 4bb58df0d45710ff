"""Batched streaming renderer (DESIGN.md §7): stereo → LRC upmix → FIR matrix → D driver feeds.

The filter matrix is the filter set's composite ``fir`` (3, D, T) — input channels (L, R, C) by
drivers by taps — applied as ``y_d[n] = Σ_c Σ_k h[c, d, k] · x_c[n − k]``: the exact linear
convolution, with no latency beyond the filters' own (output sample n depends only on inputs ≤ n).

Algorithm: uniformly partitioned overlap-save with a frequency-domain delay line (FDL)
---------------------------------------------------------------------------------------
With block size N and P = ceil(T / N) partitions of N taps, partition p of every filter is
zero-padded to 2N samples and transformed once, at construction (:func:`partition_filters`):
``H[p] = rfft(h[:, :, pN:(p+1)N], 2N)`` with F = N + 1 bins. For output block j (samples
jN … jN + N − 1) the input frame ``x[(j−1)N : (j+1)N]`` of each input channel is transformed once,
``X_j = rfft(frame)`` (3 channels, F bins), and

    Y_j = Σ_p Σ_c X_{j−p}[c] · H[p, c, :]        (one complex multiply–accumulate for all D drivers)
    y[jN : jN + N] = irfft(Y_j)[N : 2N]           (one inverse transform per driver)

which is exact: the circular wrap of the 2N-point product only touches the first N samples,
which are discarded. The past frames X_{j−1} … X_{j−P+1} live in the FDL.

Hot path — one multiply–accumulate for all bins, partitions, input channels and drivers
    The multiply–accumulate over partitions and input channels is a matrix product per
    frequency bin: the FDL window (B · k frames, P · 3 spectra) times (P · 3, D). It runs as ONE
    operation over all bins, all partitions, all input channels, all drivers and all k blocks of
    a chunk, in one of two forms chosen by the number of rows B · k (:data:`SMALL_ROWS`):

    * batched real GEMM over the bins (B · k >= 8): each complex product is written as a real
      2 × 2 block (``[re, im] · [[Re H, Im H], [−Im H, Re H]]``, :func:`fdl_matrix`:
      (F, 2 · 3P, 2D)), the complex FDL is reinterpreted as real with ``view_as_real`` and
      ``torch.bmm`` (F, B · k, 6P) @ (F, 6P, 2D) does the rest;
    * broadcast complex multiply + sum with the frequency axis innermost (B · k < 8):
      (B, k, 1, 3P, F) · (D, 3P, F) summed over 3P (:func:`fdl_spectra`).

    Measured on the 2-core CPU (T = 1024 taps, D = 5, complex64, one thread; µs per block,
    N = 64/256/1024): at B = 64 the real block GEMM takes 102/118/203, a complex ``matmul``
    over bins (F, B, 3P) @ (F, 3P, D) 207/272/577, the broadcast 853/585/750 and
    ``torch.einsum("bpcf,pcdf->bdf")`` 647/1221/8271; at B = 1 the broadcast takes 18/13/16
    and the real GEMM 22/85/76 (``bmm`` is slow for fewer than 8 rows: ≈ 75 µs per row at
    N = 1024), hence the switch.

FDL without rolling
    The FDL is a linear buffer of L = P − 1 + ``chunk`` frames with a write index, laid out
    (B, L, 3, F) for small batches (the broadcast reads it in place, rfft output is written
    without a transpose) and (F, B, L, 3) for B >= 8 (a one-block window is then the GEMM
    operand as it lies, no copy). Frames are appended, the window for the frames being computed
    is the contiguous slice ending at the write index, and only when the buffer is full are the
    last P − 1 frames moved to its start (amortised: at most P − 1 frame copies every ``chunk``
    frames; never a ``torch.roll``, never a per-block allocation of the FDL).

Many blocks per call are vectorised
    All frames of a call are cut from one zero-padded buffer with ``unfold`` (a strided view),
    transformed in one ``rfft`` per chunk, and the FDL accumulation of a chunk of k blocks is
    ONE operation over (k blocks × P partitions) using an unfolded window of the FDL, followed
    by one ``irfft``. Chunks bound the working memory (:data:`CHUNK_ELEMENTS`,
    :data:`CHUNK_SAMPLES`), so long offline calls and large batches neither run out of memory
    nor out of cache; the only Python loop is over chunks, and each chunk's input stretch is
    assembled in a persistent scratch buffer right before its FFT. A call that stays within one
    block (the usual streaming call of N samples) uses a persistent (B, 3, 2N) frame buffer.
    The state buffers (FDL, frame, scratch) are allocated once per batch size; per call only
    operation results (spectra, products, inverse transforms, the returned array) are new.

Partial blocks (exact streaming)
    When a call ends inside a block, the output of the partially filled block is computed from
    the zero-padded partial input (exact: the missing future samples only affect later outputs);
    that frame is not committed to the FDL, and the block is recomputed once it completes (only
    its not-yet-returned samples are returned). Hence streaming output equals offline output for
    every block size and every chunking of the input, up to float rounding.

Upmix
    With ``upmix=True`` the input is stereo (B, 2, S) and runs first through the streaming LRC
    upmixer :class:`spatialopt.dsp.upmix.Upmixer` (constructed as
    ``Upmixer(filterset.sample_rate, **filterset.upmix)``), whose output (L', R', C) feeds the
    filter matrix; the output is then delayed by the upmixer's latency as well
    (:attr:`Renderer.latency_samples`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor

from spatialopt.errors import DataError

__all__ = ["CHUNK_ELEMENTS", "CHUNK_SAMPLES", "SMALL_ROWS", "partition_filters", "fdl_matrix", "fdl_spectra",
           "default_offline_block_size", "Renderer", "render_offline"]

N_INPUTS = 3
"""Input channels of the filter matrix (L, R, C)."""

CHUNK_ELEMENTS = 2**21
"""Working-memory bound of one chunk: about this many complex values in the unfolded FDL window
(2 Mi complex64 = 16 MiB). A call is processed in chunks of ``k`` blocks with
``B · k · F · 3P <= CHUNK_ELEMENTS`` and ``B · k · 2N · (3 + D) <= CHUNK_SAMPLES`` (at least one
block per chunk)."""

CHUNK_SAMPLES = 2**20
"""Cache bound of one chunk: time-domain samples of the chunk's input frames and output frames
(1 Mi float32 = 4 MiB). Measured on the 2-core CPU (T = 1024, D = 5, 2 s of audio, one thread):
batch 64, N = 1024 renders 2× faster in chunks of one block than in chunks of ten (the FFT
buffers then stay in cache), while batch 1, N = 64 is 2× faster in chunks of hundreds of blocks
(per-chunk overhead); this bound gives both."""


SMALL_ROWS = 8
"""Below this many rows (batch × blocks of one chunk) the multiply–accumulate runs as a broadcast
complex multiply + sum with the frequency axis innermost instead of a batched matmul over bins:
measured on the 2-core CPU (T = 1024, D = 5, one thread) a (F, rows, 6P) @ (F, 6P, 2D) ``bmm``
costs 20–85 µs at one row (N = 64…1024) and, at N = 1024, ≈ 75 µs per row up to 7 rows, while
the broadcast costs ≈ 15 µs per row; from 8 rows on the matmul is faster (≈ 30–75 µs at 8 rows,
130–360 µs at 64 rows, against 100–1400 µs for the broadcast)."""


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def partition_filters(fir: Tensor, block_size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Partition a FIR matrix into uniform blocks and transform each partition once.

    Args:
        fir: (C, D, T) taps (input channel, driver, tap); any real dtype and device.
        block_size: N, taps per partition (>= 1).
        dtype: real compute dtype (float32 → complex64 spectra, float64 → complex128).

    Returns:
        H: (P, C, D, N + 1) complex, ``H[p] = rfft(fir[:, :, pN:(p+1)N], 2N)`` with
        P = ceil(T / N) (the last partition zero-padded), on ``fir``'s device.
    """
    if fir.dim() != 3:
        raise DataError(f"fir must be (channels, drivers, taps), got shape {tuple(fir.shape)}")
    n = int(block_size)
    if n < 1:
        raise DataError(f"block_size must be >= 1, got {block_size}")
    c, d, t = fir.shape
    p = max(1, -(-t // n))
    h = torch.nn.functional.pad(fir.to(dtype), (0, p * n - t))
    h = h.reshape(c, d, p, n).permute(2, 0, 1, 3)  # (P, C, D, N)
    return torch.fft.rfft(h, n=2 * n, dim=-1)


def fdl_matrix(H: Tensor) -> Tensor:
    """The hot-path matrix: partition spectra as one real block matrix per frequency bin.

    Args:
        H: (P, C, D, F) complex partition spectra (:func:`partition_filters`).

    Returns:
        M: (F, P · C · 2, D · 2) real, rows ordered (partition reversed, channel, re/im of the
        input), columns (driver, re/im of the output), so that for a window of the FDL holding
        frames oldest first, viewed as real (…, P · C · 2) with ``view_as_real``,
        ``window @ M`` viewed back as complex (…, D) is ``Σ_p Σ_c X_{j−p}[c] · H[p, c, :] / (2N)``
        with 2N = 2(F − 1): the inverse transform's 1/(2N) is folded in, so the renderer runs
        ``irfft(..., norm="forward")`` (unscaled; measurably faster than the default scaling).
    """
    Hc = H.flip(0).permute(3, 0, 1, 2) / (2 * (H.shape[-1] - 1))  # (F, P, C, D), oldest frame first
    re, im = Hc.real, Hc.imag
    # [x_re, x_im] @ [[re, im], [-im, re]] = [re·x_re − im·x_im, im·x_re + re·x_im]
    blocks = torch.stack([torch.stack([re, im], dim=-1), torch.stack([-im, re], dim=-1)], dim=3)  # (F, P, C, 2, D, 2)
    f, p, c, _, d, _ = blocks.shape
    return blocks.reshape(f, p * c * 2, d * 2).contiguous()


def fdl_spectra(H: Tensor) -> Tensor:
    """The small-batch hot-path operand: partition spectra for a broadcast multiply–sum.

    Args:
        H: (P, C, D, F) complex partition spectra (:func:`partition_filters`).

    Returns:
        (D, P · C, F) complex, rows ordered (partition reversed, channel) and scaled by 1/(2N),
        so that for an FDL window (…, P · C, F) holding frames oldest first,
        ``(window[..., None, :, :] * result).sum(-2)`` is (…, D, F) — the same as
        :func:`fdl_matrix`'s product, with the frequency axis innermost (no transposes).
    """
    p, c, d, f = H.shape
    return (H.flip(0).permute(2, 0, 1, 3).reshape(d, p * c, f) / (2 * (f - 1))).contiguous()


def default_offline_block_size(n_taps: int) -> int:
    """Block size :func:`render_offline` uses by default: the next power of two >= ``n_taps``
    (so P = 1 partition), at least 256 (small FFTs are dominated by per-call overhead)."""
    return max(256, 1 << max(0, int(n_taps) - 1).bit_length())


def _resolve_device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from spatialopt.train import resolve_device

    return resolve_device(str(device))


class Renderer:
    """Streaming, batched renderer of a filter set (uniformly partitioned overlap-save + FDL).

    Args:
        filterset: a :class:`spatialopt.filterset.FilterSet` (only ``fir`` (3, D, T),
            ``sample_rate``, ``upmix`` and ``latency_samples`` are used).
        block_size: N, the partition and FFT-hop size in samples (>= 1). Any call length works;
            N sets the FFT size (2N) and the partition count P = ceil(T / N).
        device: "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:N" or a
            ``torch.device``. All state and the output live there.
        upmix: run the streaming LRC upmixer first (input (B, 2, S)); False: input is already
            (B, 3, S) in the order L, R, C.
        dtype: torch.float32 (default) or torch.float64, the compute and output dtype.
        check_finite: reject non-finite input (one device sync per call on CUDA).

    Shapes: input (B, 2, S) stereo, or (B, 3, S) when ``upmix=False``; output (B, D, S) driver
    feeds, samples at ``filterset.sample_rate``; B is fixed from the first call until
    :meth:`reset`. State (the FDL, the last input block, a partial block, the upmixer's state)
    carries across calls, so feeding a signal in any chunks gives the same output as one call.
    """

    def __init__(self, filterset, block_size: int = 256, device: Any = "auto", upmix: bool = True,
                 dtype: torch.dtype = torch.float32, check_finite: bool = True):
        if dtype not in (torch.float32, torch.float64):
            raise DataError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1:
            raise DataError(f"block_size must be a positive integer, got {block_size!r}")
        fir = filterset.fir
        if not isinstance(fir, Tensor) or fir.dim() != 3 or fir.shape[0] != N_INPUTS:
            shape = tuple(fir.shape) if isinstance(fir, Tensor) else type(fir).__name__
            raise DataError(f"filter set fir must be a (3, D, T) tensor, got {shape}")
        if not bool(torch.isfinite(fir).all()):
            raise DataError("filter set fir contains NaN or Inf")
        self.device = _resolve_device(device)
        self.dtype = dtype
        self.block_size = int(block_size)
        self.sample_rate = float(filterset.sample_rate)
        self.n_drivers = int(fir.shape[1])
        self.n_taps = int(fir.shape[2])
        self.check_finite = bool(check_finite)
        self._filter_latency = int(filterset.latency_samples)
        n = self.block_size
        self.H = partition_filters(fir.detach().to(self.device), n, dtype)  # (P, 3, D, F)
        self.n_partitions = int(self.H.shape[0])
        self._M = fdl_matrix(self.H)  # (F, 6P, 2D) real, for the batched matmul
        self._Hb = fdl_spectra(self.H)  # (D, 3P, F) complex, for the small-batch broadcast
        self.upmixer = None
        if upmix:
            from spatialopt.dsp.upmix import Upmixer  # lazy: only needed with upmix

            self.upmixer = Upmixer(self.sample_rate, **dict(filterset.upmix or {}))
        self.reset()

    # ------------------------------------------------------------------------------------------

    @property
    def n_inputs(self) -> int:
        """Channels expected per call: 2 (stereo, upmixed here) or 3 (L, R, C)."""
        return 2 if self.upmixer is not None else N_INPUTS

    @property
    def latency_samples(self) -> int:
        """Total delay of the signal path in samples: the filter set's modelling delay plus the
        upmixer's latency (0 without upmix). The convolution itself adds none."""
        up = int(getattr(self.upmixer, "latency_samples", 0)) if self.upmixer is not None else 0
        return self._filter_latency + up

    def reset(self) -> None:
        """Clear all state (FDL, input history, partial block, upmixer); the next call may use a
        new batch size."""
        self._batch: int | None = None
        self._fdl: Tensor | None = None  # (B, L, 3, F) or (F, B, L, 3) complex
        self._write = 0  # FDL write index
        self._frame: Tensor | None = None  # (B, 3, 2N): last full block | r pending samples | zeros
        self._pending = 0  # r, samples of the current partial block already returned
        if self.upmixer is not None:
            self.upmixer.reset()

    # ------------------------------------------------------------------------------------------

    def _validate(self, x) -> Tensor:
        if isinstance(x, Tensor):
            t = x.detach()
        else:
            try:
                import numpy as np

                arr = np.asarray(x)
            except Exception as exc:  # pragma: no cover - anything numpy cannot read
                raise DataError(f"render input must be a float tensor or array, got {type(x).__name__} ({exc})") from None
            if arr.dtype.kind != "f":
                raise DataError(f"render input must be floating point (float32/float64 samples), got dtype {arr.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(arr))
        if not t.dtype.is_floating_point or t.dtype.is_complex:
            raise DataError(f"render input must be floating point (float32/float64 samples), got dtype {t.dtype}")
        want = self.n_inputs
        if t.dim() != 3 or t.shape[1] != want:
            what = "stereo (B, 2, S) (upmix=True)" if want == 2 else "(B, 3, S) in the order L, R, C (upmix=False)"
            raise DataError(f"render input must be {what}, got shape {tuple(t.shape)}")
        b = int(t.shape[0])
        if b < 1:
            raise DataError("render input has batch size 0")
        if self._batch is not None and b != self._batch:
            raise DataError(f"render input batch size changed from {self._batch} to {b}; call reset() before "
                            "changing the batch size")
        t = t.to(device=self.device, dtype=self.dtype)
        # one cheap reduction first; the elementwise test only when the sum is not finite
        if (self.check_finite and t.numel() and not math.isfinite(float(t.sum()))
                and not bool(torch.isfinite(t).all())):
            raise DataError("render input contains NaN or Inf samples")
        return t

    def _allocate(self, b: int) -> None:
        n, p = self.block_size, self.n_partitions
        f = n + 1
        self._chunk = max(1, min(CHUNK_ELEMENTS // (b * f * N_INPUTS * p),
                                 CHUNK_SAMPLES // (b * 2 * n * (N_INPUTS + self.n_drivers))))
        # Layout of the FDL: frequency innermost (B, L, 3, F) for small batches (the broadcast
        # path reads it in place and rfft writes it without a transpose), frequency outermost
        # (F, B, L, 3) for the matmul path (a one-block window is then a matmul operand as is).
        self._freq_last = b < SMALL_ROWS
        shape = (b, p - 1 + self._chunk, N_INPUTS, f) if self._freq_last else (f, b, p - 1 + self._chunk, N_INPUTS)
        self._fdl = torch.zeros(shape, dtype=_complex_dtype(self.dtype), device=self.device)
        self._fdl_axis = 1 if self._freq_last else 2  # the frame axis
        self._write = p - 1
        self._frame = torch.zeros(b, N_INPUTS, 2 * n, dtype=self.dtype, device=self.device)
        self._scratch = torch.empty(b, N_INPUTS, (self._chunk + 1) * n, dtype=self.dtype, device=self.device)
        self._pending = 0
        self._batch = b

    def process(self, x) -> Tensor:
        """Render the next samples of every stream.

        Args:
            x: (B, 2, S) stereo — or (B, 3, S) L, R, C when ``upmix=False`` — float samples, a
                torch tensor (any device; moved to the renderer's) or a numpy array; any S >= 0.

        Returns:
            (B, D, S) driver feeds on the renderer's device in its dtype: the next S output
            samples of ``y_d[n] = Σ_c Σ_k h[c, d, k] x_c[n − k]`` (after the upmix, if any).
            It may be a (non-contiguous) view of a larger buffer that belongs to the caller.

        Raises:
            DataError: wrong rank or channel count, a batch size different from the previous
                calls' (without :meth:`reset`), non-float dtype, NaN or Inf samples.
        """
        x = self._validate(x)
        b, _, s = x.shape
        if self._batch is None:
            self._allocate(b)
        if self.upmixer is not None:
            x = torch.as_tensor(self.upmixer.process(x)).to(device=self.device, dtype=self.dtype)
            if x.dim() != 3 or x.shape[0] != b or x.shape[1] != N_INPUTS or x.shape[2] != s:
                raise DataError(f"upmixer returned shape {tuple(x.shape)}, expected {(b, N_INPUTS, s)}")
        if s == 0:
            return x.new_zeros(b, self.n_drivers, 0)
        if self._pending + s <= self.block_size:
            return self._process_one(x)
        return self._process_many(x)

    # ------------------------------------------------------------------------------------------

    def _blocks(self, spec: Tensor, n_full: int) -> Tensor:
        """FDL multiply–accumulate and inverse transform for k consecutive frames.

        Args:
            spec: (B, 3, k, F) input spectra of the next k frames; ``k <= self._chunk``.
            n_full: how many of them complete a block (committed to the FDL); the rest (0 or 1,
                the last) is a partial frame, used and left uncommitted.

        Returns:
            (B, D, k, 2N) time-domain frames (possibly a permuted view); samples [N, 2N) of each
            are the block's output.
        """
        n, p, d = self.block_size, self.n_partitions, self.n_drivers
        b, _, k, f = spec.shape
        fdl, axis = self._fdl, self._fdl_axis
        if self._write + k > fdl.shape[axis]:  # buffer full: move the last P − 1 frames to the front
            if p > 1:
                fdl.narrow(axis, 0, p - 1).copy_(fdl.narrow(axis, self._write - (p - 1), p - 1).clone())
            self._write = p - 1
        w = self._write
        self._write = w + n_full
        if self._freq_last:  # (B, L, 3, F)
            fdl.narrow(1, w, k).copy_(spec.transpose(1, 2))
            window = fdl.narrow(1, w - (p - 1), p - 1 + k)  # (B, P − 1 + k, 3, F), oldest first
            if b * k < SMALL_ROWS:
                if k == 1:
                    xw = window.reshape(b, 1, 1, 3 * p, f)  # a view
                else:
                    xw = window.unfold(1, p, 1).permute(0, 1, 4, 2, 3).reshape(b, k, 1, 3 * p, f)
                y = (xw * self._Hb).sum(-2)  # (B, k, D, F)
                # 1/(2N) is folded into the spectra: the inverse transform runs unscaled (faster)
                return torch.fft.irfft(y, n=2 * n, dim=-1, norm="forward").transpose(1, 2)
            xw = window.unfold(1, p, 1).permute(3, 0, 1, 4, 2)  # (F, B, k, P, 3)
        else:  # (F, B, L, 3)
            fdl.narrow(2, w, k).copy_(spec.permute(3, 0, 2, 1))
            window = fdl.narrow(2, w - (p - 1), p - 1 + k)  # (F, B, P − 1 + k, 3), oldest first
            xw = window if k == 1 else window.unfold(2, p, 1).transpose(3, 4)  # (F, B, [k,] P, 3)
        # one real GEMM per bin over (batch × blocks) rows; a one-block window is used in place
        xw = torch.view_as_real(xw).reshape(f, b * k, 6 * p)
        y = torch.view_as_complex(torch.bmm(xw, self._M).view(f, b, k, d, 2))  # (F, B, k, D)
        return torch.fft.irfft(y.permute(1, 3, 2, 0), n=2 * n, dim=-1, norm="forward")

    def _process_one(self, x: Tensor) -> Tensor:
        """Calls that stay within the current block (r + S <= N): no extra buffers."""
        n, r, s = self.block_size, self._pending, x.shape[2]
        total = r + s
        frame = self._frame  # (B, 3, 2N) = [last full block | current block so far | zeros]
        frame[:, :, n + r: n + total] = x
        if total < n:
            frame[:, :, n + total:] = 0
        spec = torch.fft.rfft(frame, dim=-1).unsqueeze(2)  # (B, 3, 1, F)
        full = int(total == n)
        y = self._blocks(spec, full)[:, :, 0, n + r: n + total]
        if full:
            frame[:, :, :n] = frame[:, :, n:]
            self._pending = 0
        else:
            self._pending = total
        return y

    def _process_many(self, x: Tensor) -> Tensor:
        """Calls that complete a block and go on: all frames vectorised, chunk by chunk.

        The call's frames are cut from the virtual sequence z = [last full block | r pending
        samples | x | zeros up to a whole block]; each chunk's stretch of z is assembled in a
        persistent scratch buffer right before its FFT (cache-hot, no allocation per chunk).
        """
        n, r, d = self.block_size, self._pending, self.n_drivers
        b, _, s = x.shape
        total = r + s
        n_full, rem = divmod(total, n)
        n_frames = n_full + (1 if rem else 0)
        prefix = self._frame[:, :, : n + r]  # z[0 : N + r]

        def fill(dst: Tensor, lo: int) -> None:
            """dst (B, 3, m) ← z[lo : lo + m]."""
            hi = lo + dst.shape[-1]
            a, e = max(lo, 0), min(hi, n + r)
            if a < e:
                dst[:, :, a - lo: e - lo] = prefix[:, :, a:e]
            a, e = max(lo, n + r), min(hi, n + total)
            if a < e:
                dst[:, :, a - lo: e - lo] = x[:, :, a - n - r: e - n - r]
            a = max(lo, n + total)
            if a < hi:
                dst[:, :, a - lo:] = 0

        out = x.new_empty(b, d, n_frames * n)  # outputs of whole blocks; the call's are [r, r + S)
        start = 0
        while start < n_frames:
            k = min(self._chunk, n_frames - start)
            seg = self._scratch[:, :, : (k + 1) * n]
            fill(seg, start * n)
            spec = torch.fft.rfft(seg.unfold(-1, 2 * n, n), dim=-1)  # (B, 3, k, F)
            y = self._blocks(spec, max(0, min(k, n_full - start)))
            out[:, :, start * n: (start + k) * n].view(b, d, k, n).copy_(y[..., n:])
            start += k
        tail = self._scratch[:, :, : n + rem]
        fill(tail, n_full * n)  # the last full block and the new pending samples
        self._frame[:, :, : n + rem] = tail
        self._pending = rem
        return out[:, :, r: r + s]


def render_offline(filterset, x, upmix: bool = True, block_size: int | None = None, device: Any = "auto",
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """Render whole signals in one call.

    Args:
        filterset: a :class:`spatialopt.filterset.FilterSet`.
        x: (B, 2, S) stereo, or (B, 3, S) L, R, C with ``upmix=False``; tensor or numpy array.
        upmix: run the LRC upmixer first.
        block_size: None → :func:`default_offline_block_size` (next power of two >= T, so one
            partition: fewest operations per sample).
        device: "auto" | "cpu" | "cuda[:N]" | torch.device. dtype: float32 or float64.

    Returns:
        (B, D, S) driver feeds on ``device``: exactly what a fresh :class:`Renderer` returns for
        the same input in one call (and, up to float rounding, for any chunking or block size).
    """
    n = default_offline_block_size(filterset.fir.shape[-1]) if block_size is None else block_size
    return Renderer(filterset, block_size=n, device=device, upmix=upmix, dtype=dtype).process(x)
