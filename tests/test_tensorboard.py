"""TensorBoard logging of an optimisation run, read back from the event files.

One tiny experiment runs in-process (module fixture) with evaluation, images and audio at small
intervals; every test reads its ``tb/`` directory with TensorBoard's own EventAccumulator.
"""

from __future__ import annotations

import io
import json
import math
import wave

import numpy as np
import pytest

from spatialopt.cli._common import CONF_DIR
from spatialopt.errors import ConfigError
from spatialopt.monitor import AUDIO_TAGS, IMAGE_TAGS, REFERENCE_PEAK, run_hparams, stereo_audio_summary, synthetic_mix
from spatialopt.objectives.losses import LossConfig
from spatialopt.train import OptimConfig

STEPS, LOG_EVERY, EVAL_EVERY, IMAGE_EVERY, AUDIO_S = 20, 2, 5, 10, 1.0
TINY = [
    "scene.n_fft=256", "system.n_taps=256", "system.ctc_taps=160", "system.beam_taps=128",
    "system.virtualizer_taps=64", "system.modelling_delay_ms=1.0",
    "zone.lateral=[-0.05,0.05]", "zone.depth=[0.0]", "zone.yaw=[0]",
    "evaluation.zone.lateral=[0.0,0.02]", "evaluation.zone.depth=[0.0]", "evaluation.zone.yaw=[0]",
    "progress=false", "plots=true",
    f"optim.steps={STEPS}", f"optim.log_every={LOG_EVERY}", "optim.warmup_steps=0", "optim.lr=1e-3",
    f"optim.eval_every={EVAL_EVERY}", f"optim.image_every={IMAGE_EVERY}", f"optim.audio_seconds={AUDIO_S}",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(metrics, EventAccumulator of <run>/tb, config) of one tiny experiment."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from tensorboard.backend.event_processing import event_accumulator as ea

    from spatialopt.experiment import run_experiment

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=TINY), resolve=True)
    cfg["hparams"] = ["optim.lr", "system.n_taps", "device"]  # what a sweep would vary
    run_dir = tmp_path_factory.mktemp("tbrun")
    metrics = run_experiment(cfg, run_dir, progress=False, log=lambda *_: None)
    acc = ea.EventAccumulator(str(run_dir / "tb"), size_guidance={k: 0 for k in ea.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    return metrics, acc, cfg, run_dir


def _scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_training_scalars_every_log_step_and_the_loss_goes_down(run):
    _, acc, _, _ = run
    tags = set(acc.Tags()["scalars"])
    terms = set(LossConfig().weights) - {"drr"}  # drr only with a room
    expected = {"loss/total", "optim/lr", "optim/grad_norm"} | {f"loss/{t}" for t in terms}
    assert expected <= tags, expected - tags
    steps = list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    for tag in expected:
        values = _scalars(acc, tag)
        assert [s for s, _ in values] == steps, tag
        assert all(math.isfinite(v) for _, v in values), tag
    loss = [v for _, v in _scalars(acc, "loss/total")]
    assert loss[-1] < loss[0]
    assert all(v > 0 for _, v in _scalars(acc, "optim/grad_norm"))
    assert all(abs(v - 1e-3) < 1e-3 for _, v in _scalars(acc, "optim/lr"))  # cosine from 1e-3, no warm-up


def test_eval_metrics_at_the_start_every_eval_every_steps_and_at_the_end(run):
    metrics, acc, _, _ = run
    tags = set(acc.Tags()["scalars"])
    for name in ("ctc/separation_db/sweet_mean", "ctc/separation_db/zone_p10", "virtual/ild_err_db_rms",
                 "beam/null_depth_db", "tonal/dev_db_rms", "effort/max_gain_db", "align/path_skew_ms"):
        values = _scalars(acc, f"eval/{name}")
        assert [s for s, _ in values] == [0, 5, 10, 15, 20], name
        assert all(math.isfinite(v) for _, v in values), name
    sweet = [v for _, v in _scalars(acc, "eval/ctc/separation_db/sweet_mean")]
    assert all(5 < v < 60 for v in sweet)  # a working CTC from the first (closed-form) step on
    assert not any(t.startswith("eval/room") for t in tags)  # drr is None in free field: not logged
    # the held-out metrics (logged once, at the end) are the metrics.json numbers
    (step, held_out), = _scalars(acc, "metrics/ours/ctc/separation_db/zone_p10")
    assert step == STEPS and held_out == pytest.approx(metrics["ours"]["ctc"]["separation_db"]["zone_p10"], abs=1e-4)


def test_images_at_the_start_every_image_every_steps_and_at_the_end(run):
    from PIL import Image

    _, acc, _, _ = run
    assert set(IMAGE_TAGS) <= set(acc.Tags()["images"])
    for tag in IMAGE_TAGS:
        events = acc.Images(tag)
        assert [e.step for e in events] == [0, 10, 20], tag
        img = Image.open(io.BytesIO(events[-1].encoded_image_string))
        assert img.size == (events[-1].width, events[-1].height) and img.width > 300 and img.height > 300
        pixels = np.asarray(img.convert("L"), dtype=float)
        assert pixels.std() > 10, tag  # a drawn figure, not a blank canvas


def test_report_links_the_final_design_figures_as_png(run):
    """report.md's figures: the exported state's design figures (drawn once with the last
    TensorBoard images) as figures/<name>.png, and the scene figures; every link resolves."""
    import re

    from PIL import Image

    _, acc, _, run_dir = run
    report = (run_dir / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    expected = [f"figures/{tag.split('/')[1]}.png" for tag in IMAGE_TAGS]
    assert links[: len(expected)] == expected  # the design first
    assert {"scene_layout.png", "scene_ear_responses.png"} <= set(links)
    for link in links:
        img = Image.open(run_dir / link)
        assert img.width > 300 and img.height > 300, link
        assert np.asarray(img.convert("L"), dtype=float).std() > 10, link  # drawn, not blank
    # the PNG and the last TensorBoard image are the same figure (same aspect ratio within the tight crop)
    for tag, link in zip(IMAGE_TAGS, expected):
        last = acc.Images(tag)[-1]
        img = Image.open(run_dir / link)
        assert img.width / img.height == pytest.approx(last.width / last.height, rel=0.15), tag


def _wav(event):
    with wave.open(io.BytesIO(event.encoded_audio_string)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return w.getnchannels(), w.getframerate(), pcm.astype(float) / 32767.0


def test_audio_reference_before_and_after_are_stereo_at_the_design_rate(run):
    _, acc, cfg, _ = run
    fs = cfg["fs"]
    assert set(AUDIO_TAGS) <= set(acc.Tags()["audio"])
    steps = {tag: [e.step for e in acc.Audio(tag)] for tag in AUDIO_TAGS}
    assert steps == {"audio/reference": [0], "audio/before": [0], "audio/after": [STEPS]}
    clips = {}
    for tag in AUDIO_TAGS:
        (event,) = acc.Audio(tag)
        channels, rate, x = _wav(event)
        assert event.content_type == "audio/wav" and event.sample_rate == fs and rate == fs and channels == 2
        assert event.length_frames == x.shape[0] == int(round(AUDIO_S * fs)) + int(0.25 * fs)
        clips[tag] = x
    ref = clips["audio/reference"]
    assert np.abs(ref).max() == pytest.approx(REFERENCE_PEAK, abs=1e-3)
    for tag in ("audio/before", "audio/after"):
        x = clips[tag]
        rms = np.sqrt((x**2).mean(0))
        assert (rms > 0.1 * np.sqrt((ref**2).mean())).all(), tag  # both ears hear the mix, at a comparable level
        assert np.abs(x).max() < 1.0
        assert np.corrcoef(x[:, 0], x[:, 1])[0, 1] < 0.99, tag  # two different ear signals
    # the design changed between before and after, so the previews differ
    assert np.abs(clips["audio/before"] - clips["audio/after"]).max() > 1e-3


def test_config_text_and_hparams_against_the_final_metrics(run):
    from tensorboard.plugins.hparams import metadata

    metrics, acc, cfg, _ = run
    (text,) = acc.Tensors("config/text_summary")
    body = text.tensor_proto.string_val[0].decode()
    assert '"fs": 48000' in body and '"eval_every": 5' in body
    content = acc.PluginTagToContent("hparams")
    assert {metadata.EXPERIMENT_TAG, metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG} <= set(content)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["optim.lr"].number_value == pytest.approx(1e-3)
    assert start.hparams["system.n_taps"].number_value == 256
    assert json.loads(start.hparams["device"].string_value)["name"] == cfg["device"]["name"]
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    assert {h.name for h in experiment.hparam_infos} == {"optim.lr", "system.n_taps", "device"}
    names = {m.name.tag for m in experiment.metric_infos}
    assert "metrics/ours/ctc/separation_db/zone_p10" in names and "metrics/ours/room/drr_db" not in names
    scalars = set(acc.Tags()["scalars"])
    assert names <= scalars  # every HParams metric column has its value in this run's directory
    (_, value), = _scalars(acc, "metrics/ours/beam/null_depth_db")
    assert value == pytest.approx(metrics["ours"]["beam"]["null_depth_db"], abs=1e-4)


def test_hparams_come_from_the_hydra_overrides_with_resolved_values():
    cfg = {"optim": {"lr": 0.001, "steps": 20}, "device": {"name": "soundbar_4"}, "zone": {"yaw": [-10, 0, 10]}}
    overrides = ["optim.lr=1e-3", "device=soundbar_4", "+experiment=debug", "zone.yaw=[-10,0,10]",
                 "hydra.run.dir=/tmp/x", "~optim.steps", "progress=false", "optim.image_every=0"]
    assert run_hparams(cfg, overrides) == {"optim.lr": 0.001, "device": "soundbar_4", "experiment": "debug",
                                            "zone.yaw": "[-10,0,10]"}
    assert run_hparams({**cfg, "hparams": ["optim.steps", "missing.key"]}, overrides) == {"optim.steps": 20,
                                                                                         "missing.key": "(unset)"}
    assert run_hparams(cfg, []) == {}


def test_hparams_read_the_running_hydra_jobs_overrides():
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        full = compose("config", overrides=["optim.lr=0.002", "device=soundbar_4"], return_hydra_config=True)
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(full)
    try:
        plain = OmegaConf.to_container(full, resolve=False)
        plain.pop("hydra")
        assert run_hparams(plain) == {"optim.lr": 0.002, "device": "soundbar_4"}
    finally:
        HydraConfig.instance().cfg = previous


def test_synthetic_mix_is_deterministic_stereo_with_a_centre_source():
    a, b = synthetic_mix(48000, 1.5), synthetic_mix(48000, 1.5)
    assert a.shape == (2, 72000) and (a == b).all()
    assert float(a.abs().max()) == pytest.approx(0.5)
    x = a.double().numpy()
    # the centre voice dominates: L and R are correlated, yet not identical (panned instruments)
    assert 0.3 < np.corrcoef(x[0], x[1])[0, 1] < 0.99
    assert synthetic_mix(44100, 0.5).shape == (2, 22050)


def test_stereo_audio_summary_writes_a_two_channel_wav():
    x = np.stack([np.full(100, 0.5), np.full(100, -2.0)])  # the right channel clips at full scale
    (value,) = stereo_audio_summary("a", x, 16000).value
    assert value.audio.num_channels == 2 and value.audio.length_frames == 100
    channels, rate, pcm = _wav(value.audio)
    assert (channels, rate) == (2, 16000)
    np.testing.assert_allclose(pcm[:, 0], 0.5, atol=1e-4)
    np.testing.assert_allclose(pcm[:, 1], -1.0, atol=1e-4)


@pytest.mark.parametrize("key, value", [("eval_every", -1), ("image_every", 1.5), ("audio_seconds", -1.0),
                                        ("audio_seconds", 120), ("eval_every", True)])
def test_monitor_intervals_are_validated(key, value):
    with pytest.raises(ConfigError, match=f"optim.{key}"):
        OptimConfig(**{key: value}).validate()
