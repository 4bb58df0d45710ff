"""Bad-value sweep over every config key (issue 6).

Every leaf key of the composed default config, of every option of every config group
(``conf/<group>/*.yaml``) and of every experiment preset's analyses gets the bad values of its
kind (wrong types, NaN, ±inf, negative/zero where positive is required, absurd magnitudes, empty
lists, wrong list lengths, unknown enum strings); every mapping gets an unknown key (a typo). Each
case must end in exactly one of:

(a) a :class:`~spatialopt.errors.ConfigError` from :func:`spatialopt.config.validate_config` —
    the check ``run_experiment`` and ``spatialopt-optimize`` run before any work — naming the
    full dotted key (or the bad element ``key[i]``), showing the bad value, saying what is
    allowed, on one line; no scene is built while validating;
(b) an entry of :data:`ACCEPTED` — a value that is legitimately accepted, each justified there.

A key without a :data:`SPECS` entry fails the sweep, so a new config key must say what its bad
values are. A few cases also run through the real ``spatialopt-optimize`` console script.
"""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from spatialopt.cli._common import CONF_DIR
from spatialopt.errors import ConfigError

NAN, INF = float("nan"), float("inf")
BIN = Path(sys.executable).parent
CONF = Path(CONF_DIR)
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "experiment"))
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SLOW_CASE_S = 5.0  # one validation: milliseconds; seconds would mean something got allocated or built

# ------------------------------------------------------------------------------------------------
# bad values by kind

WRONG = ["abc", None, {"a": 1}]  # a string for a number, nothing, a dict for a scalar


def _number(lo=None, hi=None, *, zero_ok=True, extra=()):
    """A bounded number: non-numbers, bools, a list, non-finite, absurd magnitudes, out of range."""
    vals = [*WRONG, True, [1.0], NAN, INF, -INF, 1e12, -1e12, *extra]
    if lo is not None and lo >= 0:
        vals += [-1.0]
        if not zero_ok:
            vals += [0.0]
    return vals


def _integer(lo, hi, *, extra=()):
    vals = [*WRONG, True, [1], 2.5, NAN, INF, 10**12, -(10**12), lo - 1, hi + 1, *extra]
    return vals


def _enum(*extra):
    return ["nonsense", "", 5, None, ["x"], {"a": 1}, *extra]


BOOL = ["yes", "true", 1, 0, None, [True], {"a": 1}]
STRING = ["", "   ", 5, None, ["a"], {"a": 1}]
NUMBER_LIST = ["abc", None, {"a": 1}, [], [NAN], [INF], [-INF], [1e12], [None], ["x"], [[0.0]], [True], [0.0] * 1001]
BAND = [*WRONG, 1000, [], [1000.0], [100.0, 1000.0, 2000.0], [2000.0, 1000.0], [1000.0, 1000.0], [NAN, 1000.0],
        [-1.0, 1000.0], [0.0, INF], [True, 1000.0], "1000-2000", [1e12, 2e12]]
VEC3 = [*WRONG, 5, [], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0], [NAN, 0.0, 0.0], [INF, 0.0, 0.0], [1e12, 0.0, 0.0],
        [True, 0.0, 0.0], ["x", 0.0, 0.0], "0,0,0"]
ANGLE = _number(extra=[1000.0, -1000.0])

# key pattern (full dotted key, ``[i]`` for list indices) → bad values. Every leaf must match one.
SPECS: list[tuple[str, list]] = [
    # top level
    (r"fs", _number(8000, 768000, zero_ok=False, extra=[0, -48000, 100, 10**9])),
    (r"seed", [x for x in _integer(0, 2**63 - 1, extra=[2**64]) if x != 10**12]),  # 10^12 is a fine seed
    (r"compute\.device", _enum("tpu", "cuda:abc", "cpu:-1")),
    (r"compute\.dtype", _enum("float16", "FLOAT32", 32)),
    (r"(resume|progress|plots)", BOOL),
    (r"out", STRING),
    (r"hparams", [5, True, {"a": 1}, [], [1], [""], [None], [["optim.lr"]]]),
    (r"analysis", ["beamformer", 5, True, {"a": 1}, ["polar_bear"], [5], [None], [["beamformer"]]]),
    (r"analysis_options", ["x", 5, [1], {"polar_bear": {}}, {"beamformer": 5}, {"beamformer": {"polar_khz": [1.0]}}]),
    (r"objective", ["", "sparkle.x", "ctc..zone_p10", "ctc.", 5, None, ["ctc"], {"a": 1}]),
    (r"objective_direction", _enum("MAXIMIZE", "up")),
    # device
    (r"device\.name", STRING),
    (r"device\.enclosure_radius", [*(x for x in _number(0, 10, zero_ok=False) if x is not None), 11.0]),
    (r"device\.sh_order", ["high", "", None, -1, 2.5, 10**12, 201, True, [1], {"a": 1}, NAN]),
    (r"device\.drivers", [*WRONG, 5, [], [5], ["x"], [{}], [{"name": f"d{i}", "model": "monopole",
                                                                 "position": [0.0, 0.1 * i, 0.0]} for i in range(65)]]),
    (r"device\.drivers\[\d+\]\.name", STRING),
    (r"device\.drivers\[\d+\]\.model", _enum("horn", "MONOPOLE")),
    (r"device\.drivers\[\d+\]\.cap_angle", _number(0, 90, zero_ok=False, extra=[90.0, 120.0])),
    (r"device\.drivers\[\d+\]\.azimuth", ANGLE),
    (r"device\.drivers\[\d+\]\.elevation", _number(extra=[91.0, -100.0])),
    (r"device\.drivers\[\d+\]\.band_hz", BAND),
    (r"device\.drivers\[\d+\]\.position", VEC3),
    # listener
    (r"listener\.type", _enum("dummy_head", "SOFA")),
    (r"listener\.distance", _number(0, 1000, zero_ok=False)),
    (r"listener\.height", _number()),
    (r"listener\.head_radius", _number(0, 0.5, zero_ok=False, extra=[0.6])),
    (r"listener\.ear_azimuth", _number(extra=[0.0, 180.0, -90.0])),
    (r"listener\.ear_elevation", _number(extra=[91.0, -91.0])),
    (r"listener\.sofa_file", ["", 5, None, ["a.sofa"], {"a": 1}, "/nonexistent/hrtf.sofa", "/", "/dev/null"]),
    # zones: the optimisation zone and the evaluation zone
    (r"(evaluation\.)?zone\.(lateral|depth|height)", [*NUMBER_LIST, 0.01]),
    (r"(evaluation\.)?zone\.yaw", [*NUMBER_LIST, [720.0], [-200.0], 5]),
    (r"(evaluation\.)?zone\.sigma", ["x", 5, {"a": 1}, [], [0.1, 1.0], [0.1, -1.0, 5.0], [0.0, 1.0, 1.0],
                                     [NAN, 1.0, 1.0], [INF, 1.0, 1.0], [1e12, 1.0, 1.0], [True, 1.0, 1.0]]),
    (r"evaluation\.n_fft_factor", _integer(4, 64, extra=[0, -4])),
    # room
    (r"room\.type", _enum("cathedral", "Shoebox")),
    (r"room\.dims", [*VEC3, [5.0, 4.0, -2.0], [5.0, 4.0, 0.0]]),
    (r"room\.device_position", [*VEC3, [6.0, 1.0, 1.0], [0.0, 2.0, 1.0], [-1.0, 2.0, 1.0]]),
    (r"room\.absorption", [*WRONG, True, [], 1.5, 1.0, -0.1, NAN, INF, 1e12, [0.1] * 5, [0.1] * 7,
                           [[0.1] * 7] * 5, [[0.1] * 6] * 6, [[[0.1]]], ["x"] * 6]),
    (r"room\.max_order", _integer(0, 30)),
    # scene
    (r"scene\.n_fft", _integer(8, 2**20, extra=[0, -2, 1001, 6, 2**21])),
    (r"scene\.speed_of_sound", _number(100, 2000, zero_ok=False, extra=[1e-9, 99.0, 2001.0])),
    (r"scene\.ring_count", _integer(4, 36000, extra=[0, 10**9])),
    (r"scene\.sphere_order", _integer(1, 200, extra=[0, 10**9])),
    (r"scene\.reference_distance", [x for x in _number(0, 1000, zero_ok=False) if x is not None]),
    # system
    (r"system\.(n_taps|ctc_taps|beam_taps|virtualizer_taps)", _integer(1, 2**16, extra=[0, -4, 10**9])),
    (r"system\.allpass_sections", _integer(0, 64, extra=[10**9])),
    (r"system\.modelling_delay_ms", _number(0, 1000, extra=[10**9])),
    (r"system\.ctc_band_hz", BAND),
    (r"system\.(ctc_beta_inside|ctc_beta_outside|beam_beta)", _number(0, 1e6, zero_ok=False)),
    (r"system\.zone_contra_weight", _number(0, 1e6)),
    (r"system\.beam_wng_min_db", _number()),
    (r"system\.crossover_octaves", _number(0, 10, zero_ok=False)),
    (r"system\.symmetry", _enum("mirrored", "MIRROR", "left")),
    (r"loss\.room_ears", _enum("early", "DIRECT", 1)),
    # loss
    (r"loss\.weights\.\w+", _number(0, 1e6)),
    (r"loss\.(ctc_band_hz|beam_band_hz)", BAND),
    (r"loss\.ctc_target_db", _number(0, 100)),
    (r"loss\.(ctc_taper_octaves|pre_ring_ms|post_ring_ms|itd_weight)", _number(0, 1e6)),
    (r"loss\.worst_case_power", _number(1, 100, extra=[0.0, 0.5])),
    (r"loss\.null_target_db", _number(extra=[1.0])),
    (r"loss\.(max_gain_db|wng_min_db|drr_target_db)", _number()),
    (r"loss\.binaural_nominal_share", _number(0, 1, extra=[1.5])),
    (r"loss\.crossover_order", _integer(2, 64, extra=[0, 3, 7, -2])),
    (r"loss\.crossover_floor_db", _number(extra=[1.0])),
    # optim
    (r"optim\.optimizer", _enum("sgd", "Adam")),
    (r"optim\.schedule", _enum("linear", "Cosine")),
    (r"optim\.(steps|warmup_steps|eval_every|image_every)", _integer(0, 10**7, extra=[10**9])),
    (r"optim\.(checkpoint_every|log_every)", _integer(1, 10**7, extra=[0, 10**9])),
    (r"optim\.lr", _number(0, 1000, zero_ok=False)),
    (r"optim\.grad_clip", _number(0, 1e6)),
    (r"optim\.audio_seconds", _number(0, 60, extra=[61.0])),
    # export, upmix
    (r"export\.dir", STRING),
    (r"upmix\.n_fft", _integer(16, 2**16, extra=[0, 1001, 2**17, 10**9])),
    (r"upmix\.hop", _integer(1, 2**16, extra=[0, 3, 4096, 8192, 10**9])),
    (r"upmix\.(centre_gain|mask_exponent)", _number(0, None, zero_ok=False)),
    (r"upmix\.(smoothing_ms|panning_rejection|residual_floor)", _number(0, None)),
    (r"upmix\.low_hz", _number(0, None, extra=[24000.0, 30000.0])),
    (r"upmix\.bass_to_centre", _number(0, 1, extra=[1.5])),
    # analyses (experiment presets): lists and numbers of spatialopt.analysis.ANALYSES
    (r"analysis_options\.\w+\.\w+_band_hz", [*BAND[:-1], [100.0, 30000.0]]),
    (r"analysis_options\.\w+\.band_hz", [*BAND[:-1], [100.0, 30000.0]]),
    (r"analysis_options\.\w+\.(spot_hz|polar_hz)", [*NUMBER_LIST, [0.0], [-100.0], [30000.0]]),
    (r"analysis_options\.\w+\.(lateral_m|distance_m|distances_m)", [*NUMBER_LIST, [0.1, 0.0]]),
    (r"analysis_options\.\w+\.(report_at_m|table_lateral_m|thresholds_db)", NUMBER_LIST),
    (r"analysis_options\.\w+\.(threshold_db|ild_threshold_db)", _number()),
    (r"analysis_options\.\w+\.point_design", BOOL),
    (r"analysis_options\.room_depth\.listener", _enum("sphere_head")),
    (r"analysis_options\.room_depth\.max_order", _integer(0, 30)),
    (r"analysis_options\.room_depth\.n_fft", _integer(8, 2**20, extra=[10**9])),
    (r"analysis_options\.room_depth\.freq_chunk", _integer(1, 65536, extra=[0, 10**9])),
    (r"analysis_options\.room_depth\.q_stride", _integer(1, 1000, extra=[0, 10**9])),
]

# Values that are legitimately accepted (outcome (b)): (key pattern, repr of the value, why).
ACCEPTED: list[tuple[str, str, str]] = [
    # build_zone: a single offset is a one-element list (``zone.yaw=0`` on the command line).
    (r"(evaluation\.)?zone\.(lateral|depth|height)", "0.01", "a bare number is a one-element offset list"),
    (r"(evaluation\.)?zone\.yaw", "5", "a bare number is a one-element offset list"),
    # build_device: null means 'auto', exactly as an omitted key.
    (r"device\.sh_order", "None", "null = auto"),
]


def _spec(path: str) -> list:
    for pattern, values in SPECS:
        if re.fullmatch(pattern, path):
            return list(values)
    raise KeyError(path)


def _accepted(path: str, value) -> bool:
    return any(re.fullmatch(p, path) and r == repr(value) for p, r, _ in ACCEPTED)


# ------------------------------------------------------------------------------------------------
# the configs: composed exactly as spatialopt-optimize composes them


def _write_sofa(path: Path) -> None:
    """A tiny SimpleFreeFieldHRIR file (30° grid, delta IRs): a valid listener=sofa base."""
    az, el = np.arange(0, 360, 30.0), np.arange(-60, 61, 30.0)
    a, e = np.meshgrid(az, el, indexing="ij")
    a, e = np.concatenate([a.ravel(), [0.0, 0.0]]), np.concatenate([e.ravel(), [-90.0, 90.0]])
    ir = np.zeros((a.size, 2, 64))
    ir[:, :, 8] = 1.0
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"], f.attrs["SOFAConventions"] = "SOFA", "SimpleFreeFieldHRIR"
        f["Data.IR"] = ir
        f["Data.SamplingRate"] = np.array([48000.0])
        f["Data.Delay"] = np.zeros((1, 2))
        pos = f.create_dataset("SourcePosition", data=np.stack([a, e, np.full_like(a, 1.2)], -1))
        pos.attrs["Type"], pos.attrs["Units"] = "spherical", "degree, degree, metre"
        lp = f.create_dataset("ListenerPosition", data=np.zeros((1, 3)))
        lp.attrs["Type"], lp.attrs["Units"] = "cartesian", "metre"


def _default_choices() -> dict[str, str]:
    import yaml

    defaults = yaml.safe_load((CONF / "config.yaml").read_text())["defaults"]
    return {k: v for d in defaults if isinstance(d, dict) for k, v in d.items()}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, tuple[dict, tuple[str, ...]]]:
    """name → (composed plain config, the key prefixes whose leaves the sweep mutates there)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from spatialopt.analysis import ANALYSES

    sofa = tmp_path_factory.mktemp("sofa") / "tiny.sofa"
    _write_sofa(sofa)
    choices = _default_choices()
    out: dict[str, tuple[dict, tuple[str, ...]]] = {}
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        def plain(overrides):
            return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)

        cfg = plain([])
        cfg["upmix"]["hop"] = 1024  # a documented key no YAML file sets (conf/upmix/default.yaml)
        out["default"] = (cfg, ("",))
        for group in GROUPS:
            for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
                if choices.get(group) == option:
                    continue  # the default: swept above
                cfg = plain([f"{group}={option}"])
                if group == "listener" and option == "sofa":
                    cfg["listener"]["sofa_file"] = str(sofa)
                out[f"{group}={option}"] = (cfg, (group,))
        for preset in PRESETS:
            cfg = plain([f"+experiment={preset}"])
            for name in cfg["analysis"]:  # every option of the preset's analyses, at its default
                cfg["analysis_options"][name] = copy.deepcopy(ANALYSES[name][1])
            if preset == "debug":  # a reduced design: its keys are swept in the default base already
                out[f"+experiment={preset}"] = (cfg, ())
            else:
                out[f"+experiment={preset}"] = (cfg, ("analysis", "analysis_options"))
    return out


@pytest.fixture(scope="module", autouse=True)
def no_scene_is_built():
    """Validation must never compute a scene: building one here fails the test."""
    import spatialopt.acoustics.scene as scene_mod
    import spatialopt.config as config_mod

    def refuse(*args, **kwargs):
        raise AssertionError("a scene was built during validation")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scene_mod, "build_scene", refuse)
        mp.setattr(config_mod, "build_scene", refuse)
        yield


def _leaves(node, path: str = ""):
    """(dotted path, value) of every leaf: scalars and lists of scalars; mappings and lists of
    mappings (the drivers) are walked into, and yielded too as the list itself."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        yield path, node
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}[{i}]")
    else:
        yield path, node


def _mappings(node, path: str = ""):
    """Dotted paths of every mapping (where an unknown key can be typed)."""
    if isinstance(node, dict):
        yield path
        for key, value in node.items():
            yield from _mappings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict):
                yield from _mappings(value, f"{path}[{i}]")


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _set(cfg: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    tokens = [(name, idx) for name, idx in _TOKEN.findall(path)]
    node = cfg
    for name, idx in tokens[:-1]:
        node = node[name] if name else node[int(idx)]
    name, idx = tokens[-1]
    node[name if name else int(idx)] = value
    return cfg


def _strip_index(key: str) -> str:
    return re.sub(r"(\[\d+\])+$", "", key)


def _get(node, rel: str):
    """The value at a relative path like ``[0].name`` inside ``node`` (None where it is missing)."""
    for name, idx in _TOKEN.findall(rel):
        try:
            node = node[name] if name else node[int(idx)]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _names_key(err_key: str, path: str) -> bool:
    """The error names the mutated key, an element of it (``key[i]``) or a field of an element."""
    return _strip_index(err_key) == _strip_index(path) or err_key.startswith(path + "[")


def _shows(err_value, bad, err_key: str = "", path: str = "") -> bool:
    """The error's value is the bad value, an element of it, or contains it."""
    if path and err_key.startswith(path + "[") and "." in err_key[len(path):]:
        bad = _get(bad, err_key[len(path):])  # a field of an element: its own value
    a, b = repr(err_value), repr(bad)
    if a in b or b in a:
        return True
    if isinstance(bad, int) and not isinstance(bad, bool):
        return repr(float(bad)) in a
    return False


def _selected(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(p == "" or path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


def _sweep_cases(bases) -> list[tuple[str, str, object]]:
    return [(name, path, bad) for name, (cfg, prefixes) in bases.items() for path, _ in _leaves(cfg)
            if _selected(path, prefixes) for bad in _spec(path)]


def _validate(cfg):
    from spatialopt.config import validate_config

    return validate_config(cfg)


# ------------------------------------------------------------------------------------------------
# the sweep


def test_every_base_config_is_valid(bases):
    """Each option of each group (and each preset) validates as shipped: the sweep starts from good configs."""
    assert {"default", "device=soundbar_4", "device=stereo_pair", "listener=omni", "listener=sofa", "room=living_room",
            "zone=dense", "zone=point", "optim=lbfgs"} <= set(bases)
    assert all(f"+experiment={p}" in bases for p in PRESETS)
    for name, (cfg, _) in bases.items():
        _validate(cfg)


def test_every_leaf_key_has_a_spec(bases):
    missing = sorted({path for cfg, _ in bases.values() for path, _ in _leaves(cfg)
                      if not any(re.fullmatch(p, path) for p, _ in SPECS)})
    assert not missing, f"config keys without bad values in SPECS: {missing}"


def test_bad_value_sweep(bases, record_property):
    """Every bad value of every key: a one-line ConfigError naming the key and value, or an ACCEPTED entry."""
    cases = _sweep_cases(bases)
    failures, refused, accepted, keys = [], 0, set(), set()
    start = time.perf_counter()
    for name, path, bad in cases:
        keys.add(path)
        cfg = _set(bases[name][0], path, bad)
        t0 = time.perf_counter()
        try:
            _validate(cfg)
        except ConfigError as exc:
            message = str(exc)
            problems = []
            if not _names_key(exc.key, path):
                problems.append(f"names key {exc.key!r}")
            if not _shows(exc.value, bad, exc.key, path):
                problems.append(f"shows value {exc.value!r}")
            if not message.startswith(f"{exc.key}=") or not exc.allowed.strip() or "\n" in message:
                problems.append("message is not one line 'key=value: allowed'")
            if _accepted(path, bad):
                problems.append("is refused although listed in ACCEPTED")
            if problems:
                failures.append(f"[{name}] {path}={bad!r}: {', '.join(problems)} — {message}")
            refused += 1
        except Exception as exc:  # noqa: BLE001 - anything else is the bug this test looks for
            failures.append(f"[{name}] {path}={bad!r}: {type(exc).__name__}: {exc}")
        else:
            if _accepted(path, bad):
                accepted.add((path, repr(bad)))
            else:
                failures.append(f"[{name}] {path}={bad!r}: silently accepted")
        if time.perf_counter() - t0 > SLOW_CASE_S:
            failures.append(f"[{name}] {path}={bad!r}: validation took {time.perf_counter() - t0:.1f} s")
    elapsed = time.perf_counter() - start
    record_property("cases", len(cases))
    record_property("keys", len(keys))
    print(f"\nbad-value sweep: {len(cases)} cases over {len(keys)} keys in {len(bases)} configs: {refused} refused, "
          f"{len(cases) - refused - len(failures)} accepted by the allow-list; {elapsed:.1f} s")
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures[:60])
    assert len(cases) > 1000 and len(keys) > 100


def test_every_accepted_value_is_used(bases):
    """The allow-list stays minimal: every entry is hit by some case and really accepted."""
    cases = _sweep_cases(bases)
    for pattern, value, why in ACCEPTED:
        hits = [(n, p, b) for n, p, b in cases if re.fullmatch(pattern, p) and repr(b) == value]
        assert hits, (pattern, value, why)
        for name, path, bad in hits[:3]:
            _validate(_set(bases[name][0], path, bad))


# a typo'd key in every mapping: Hydra's struct mode refuses `optim.setps=10`; `+optim.setps=10`
# (or a YAML file) gets past it, and the validation must refuse it.


def test_unknown_key_in_every_mapping(bases):
    failures, count = [], 0
    for name, (cfg, prefixes) in bases.items():
        for path in _mappings(cfg):
            if not _selected(path, prefixes):
                continue
            count += 1
            key = f"{path}.setps" if path else "setps"
            bad = _set(cfg, key, 10) if path else {**cfg, "setps": 10}
            try:
                _validate(bad)
            except ConfigError as exc:
                if exc.key != key or "unknown" not in exc.allowed or "\n" in str(exc):
                    failures.append(f"[{name}] {key}: {exc}")
            except Exception as exc:  # noqa: BLE001
                failures.append(f"[{name}] {key}: {type(exc).__name__}: {exc}")
            else:
                failures.append(f"[{name}] {key}: silently accepted")
    assert count >= 20
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("group", ["device", "listener", "zone", "room", "scene", "system", "loss", "optim", "export",
                                   "evaluation", "upmix", "compute", "evaluation.zone", "loss.weights"])
@pytest.mark.parametrize("bad", [5, "x", [1]])
def test_a_group_that_is_not_a_mapping(bases, group, bad):
    cfg = _set(bases["default"][0], group, bad)
    with pytest.raises(ConfigError) as info:
        _validate(cfg)
    assert info.value.key == group and _shows(info.value.value, bad), str(info.value)


def test_hydra_struct_mode_refuses_an_unknown_key_and_an_unknown_option():
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match=r"optim\.setps"):
            compose("config", overrides=["optim.setps=10"])
        with pytest.raises(MissingConfigException, match="device/nonexistent"):
            compose("config", overrides=["device=nonexistent"])
        compose("config", overrides=["+optim.setps=10"])  # "+" adds it: validate_config must refuse (above)


# ------------------------------------------------------------------------------------------------
# cross-key and geometric checks that used to fail only after the optimisation


@pytest.mark.parametrize("base, path, value, key", [
    ("default", "device.drivers[1].name", "tweeter", "device.drivers[1].name"),  # duplicate name
    ("room=living_room", "evaluation.zone.depth", [0.0, 3.5], "evaluation.zone"),  # held-out zone outside the room
    ("default", "evaluation.zone.depth", [0.0, -1.9], "evaluation.zone"),  # held-out zone inside the device
    ("default", "listener.distance", 0.1, "listener.distance"),  # the nominal point inside the device
    ("default", "system.ctc_taps", 1000, "system.n_taps"),  # ctc_taps + virtualizer_taps − 1 > n_taps
    ("default", "system.modelling_delay_ms", 20.0, "system.modelling_delay_ms"),  # past the end of ctc_taps
    ("default", "scene.n_fft", 512, "scene.n_fft"),  # < system.n_taps
    ("default", "upmix.low_hz", 24000.0, "upmix.low_hz"),  # at Nyquist
    ("default", "scene.n_fft", 2**20, "scene.n_fft"),  # 98 GiB of design-scene tensors
    ("default", ["scene.sphere_order", "evaluation.n_fft_factor"], [100, 64], "evaluation.n_fft_factor"),  # 55 GiB
    ("+experiment=room_depth", "analysis_options.room_depth.distances_m", [1.0, 9.0],
     "analysis_options.room_depth.distances_m"),  # outside the room
    ("+experiment=listening_zone", "analysis_options.listening_zone.lateral_m", [0.1, 0.2],
     "analysis_options.listening_zone"),  # no lateral 0
    ("+experiment=listening_zone", "analysis_options.listening_zone.distance_m", [0.05, 2.0],
     "analysis_options.listening_zone"),  # inside the device
    ("+experiment=ctc_zone", "analysis_options.ctc_zone.lateral_m", [-5.0, 0.0, 5.0],
     "analysis_options.ctc_zone.lateral_m"),  # fine in free field...
    ("+experiment=beamformer", "analysis", ["room_depth"], "analysis"),  # room_depth needs a shoebox
])
def test_relations_refused_up_front(bases, base, path, value, key):
    cfg = bases[base][0]
    for p, v in zip(path, value) if isinstance(path, list) else [(path, value)]:
        cfg = _set(cfg, p, v)
    if path == "analysis_options.ctc_zone.lateral_m":
        cfg = _set(cfg, "room", bases["room=living_room"][0]["room"])  # ... but not 5 m to the side in the room
    with pytest.raises(ConfigError) as info:
        _validate(cfg)
    assert info.value.key == key, str(info.value)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# run_experiment refuses before any work


@pytest.mark.parametrize("path, value", [
    ("system.crossover_octaves", 0.0),  # was a ValueError traceback after the scene was built
    ("evaluation.zone.yaw", ["ten"]),  # was refused only after the optimisation (as zone.yaw)
    ("upmix.n_fft", 1001),  # was named "n_fft"
    ("loss.worst_case_power", 0.0),  # was a division by zero in the loss
    ("optim.warmup_steps", "x"),  # was a TypeError in the scheduler
    ("optim.steps", 10**9),
    ("system.n_taps", 10**12),
    ("seed", "x"),
    ("analysis_options", {"room_depth": {"max_order": 50}}),
])
def test_run_experiment_refuses_before_any_work(bases, tmp_path, monkeypatch, path, value):
    import spatialopt.experiment as experiment

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the config was validated")

    monkeypatch.setattr(experiment, "scene_from_config", refuse)
    monkeypatch.setattr(experiment, "initialize_system", refuse)
    cfg = _set(bases["default"][0], path, value)
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as info:
        experiment.run_experiment(cfg, run_dir, progress=False, log=lambda *a: None)
    assert _strip_index(info.value.key) == path or info.value.key.startswith(path), str(info.value)
    assert not run_dir.exists()  # not even the run directory


# ------------------------------------------------------------------------------------------------
# through the console script


def _optimize(tmp_path: Path, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environ.update(env or {}, OMP_NUM_THREADS="1")
    return subprocess.Popen([str(BIN / "spatialopt-optimize"), f"hydra.run.dir={tmp_path}", *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)


CLI_CASES = {  # name → (overrides, env, expected exit status, stderr check)
    "absurd_steps": (["optim.steps=1000000000"], None, 2,
                     "spatialopt-optimize: error: optim.steps=1000000000: must be an integer in [0, 10000000]\n"),
    "missing_sofa": (["listener=sofa"], None, 2,
                     "spatialopt-optimize: error: listener.sofa_file=???: is required (set it on the command line: "
                     "listener.sofa_file=VALUE)\n"),
    "typo_added": (["+optim.setps=10"], None, 2, "spatialopt-optimize: error: optim.setps=10: unknown key; known keys: "),
    "full_error": (["optim.steps=1000000000"], {"HYDRA_FULL_ERROR": "1"}, 1, None),
    "typo": (["optim.setps=10"], None, 1, None),
    "unknown_option": (["device=nonexistent"], None, 1, None),
}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """All console-script cases at once (each is a startup and a refusal: seconds)."""
    procs = {name: _optimize(tmp_path_factory.mktemp(name), *o, env=e) for name, (o, e, _, _) in CLI_CASES.items()}
    return {name: (p.wait(timeout=300), *p.communicate(timeout=60)) for name, p in procs.items()}


@pytest.mark.parametrize("name", [n for n, c in CLI_CASES.items() if c[3] is not None])
def test_cli_one_line_error(cli_runs, name):
    rc, out, err = cli_runs[name]
    expected_rc, expected = CLI_CASES[name][2], CLI_CASES[name][3]
    assert rc == expected_rc, err
    assert err.startswith(expected), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "building the scene" not in out  # refused before any work


def test_cli_full_error_shows_the_traceback(cli_runs):
    rc, _, err = cli_runs["full_error"]
    assert rc != 0
    assert "Traceback (most recent call last)" in err and "ConfigError: optim.steps=1000000000" in err, err


def test_cli_hydra_refusals_are_readable(cli_runs):
    """Hydra's own refusals (before our code runs): exit status 1, a few readable lines naming the
    key or the option and what exists, no traceback."""
    rc, _, err = cli_runs["typo"]
    assert rc == 1 and "Could not override 'optim.setps'" in err and "+optim.setps=10" in err, err
    assert "Traceback" not in err
    rc, _, err = cli_runs["unknown_option"]
    assert rc == 1 and "Could not find 'device/nonexistent'" in err, err
    assert all(name in err for name in ("smart_speaker_5", "soundbar_4", "stereo_pair")), err
    assert "Traceback" not in err
