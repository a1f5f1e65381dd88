"""Error-minimising thresholds (eventsnn.convert.thresholds), layer-wise calibration
(eventsnn.convert.layer_calibration) and the conversion presets (eventsnn.convert.presets)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventsnn
from eventsnn.convert.calibrate import activation_scale
from eventsnn.convert.layer_calibration import MIN_IMAGES, calibrate_layers, rate_errors
from eventsnn.convert.presets import PRESETS, resolve_settings
from eventsnn.convert.thresholds import N_CANDIDATES, MMSEAccumulator, quantise


def test_quantise_by_hand():
    # λ = 1, T = 4, Γ = 2: o = 0.3 -> floor(1.2 + v0) spikes / 4
    assert quantise(np.array(0.3), 1.0, 4, 2, 0.0) == 0.25
    assert quantise(np.array(0.3), 1.0, 4, 2, 0.5) == 0.25
    assert quantise(np.array(0.4), 1.0, 4, 2, 0.5) == 0.5      # rounds: floor(1.6 + 0.5) = 2
    assert quantise(np.array(7.0), 1.0, 4, 2, 0.5) == 2.0      # capped at Γ λ
    assert quantise(np.array(0.0), 3.0, 4, 2, 0.99) == 0.0     # zero stays zero


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), T=st.integers(1, 64), burst=st.integers(1, 5),
       half=st.booleans(), channelwise=st.booleans())
def test_mmse_scale_is_the_best_candidate(seed, T, burst, half, channelwise):
    """Brute force over the candidate set (Eq. M2) gives the same λ, streamed or not."""
    rng = np.random.default_rng(seed)
    acts = np.maximum(rng.normal(0, 1, (6, 3, 4, 4)), 0).astype(np.float32) * rng.uniform(0.1, 4)
    v0 = 0.5 if half else 0.0
    lam = activation_scale(acts, "mmse", burst=burst, channelwise=channelwise, timesteps=T, v0=v0)
    rows = np.moveaxis(acts, 1, 0).reshape(3, -1) if channelwise else acts.reshape(1, -1)
    want = []
    for r in rows.astype(np.float64):
        cand = np.arange(1, N_CANDIDATES + 1) * r.max() / (burst * N_CANDIDATES)
        err = [((r - quantise(r, c, T, burst, v0)) ** 2).sum() for c in cand]
        want.append(cand[int(np.argmin(err))])
    np.testing.assert_array_equal(np.atleast_1d(lam), want)
    acc = MMSEAccumulator(acts.shape[1:], len(acts), burst, channelwise, T, v0)
    for part in np.array_split(acts, 3):
        acc.update(part)
    np.testing.assert_array_equal(np.atleast_1d(acc.result()[0]), want)


def test_mmse_dead_channel_gets_unit_scale():
    acts = np.zeros((4, 2, 3, 3), np.float32)
    acts[:, 1] = 2.0
    acc = MMSEAccumulator((2, 3, 3), 4, 5, True, 32, 0.5)
    acc.update(acts)
    lam, _, dead = acc.result()
    assert dead == 1 and lam[0] == 1.0 and lam[1] > 0


# ----------------------------------------------------------------------------- presets


def test_paper_preset_is_the_old_default():
    assert PRESETS["paper"] == {**PRESETS["paper"], "norm": "burst-percentile", "percentile": 99.9,
                                "burst": 5, "channelwise": False, "v_init": 0.0,
                                "calibration": "none"}
    s = resolve_settings("paper", norm="max", v_init=None)
    assert s["norm"] == "max" and s["v_init"] == 0.0


@pytest.mark.parametrize("kw, match", [
    ({"preset": "fast"}, "unknown preset 'fast'"),
    ({"v_init": 1.0}, r"\[0, 1\)"), ({"v_init": -0.25}, r"\[0, 1\)"),
    ({"v_init": float("nan")}, r"\[0, 1\)"), ({"v_init": "half"}, r"\[0, 1\)"),
    ({"calibration": "full"}, "unknown calibration"),
    ({"timesteps": 0}, "timesteps must be a positive integer"),
    ({"timesteps": float("nan")}, "timesteps must be a positive integer"),
    ({"calib_images": -5}, "calib_images must be a positive integer"),
    ({"calib_passes": 0}, "calib_passes must be a positive integer"),
    ({"calibration": "bias", "calib_images": 8}, f"calib_images >= {MIN_IMAGES['bias']}"),
    ({"calibration": "potential", "calib_images": 20}, f"calib_images >= {MIN_IMAGES['potential']}"),
])
def test_bad_settings_are_rejected(kw, match):
    kw = {"preset": "default", **kw}
    with pytest.raises(ValueError, match=match):
        resolve_settings(kw.pop("preset"), **kw)


@pytest.fixture
def shipped(shipped_model):
    return shipped_model


def test_convert_rejects_too_few_calibration_images(shipped):
    graph, train, _ = shipped
    with pytest.raises(ValueError, match="needs at least 16 calibration images"):
        eventsnn.convert(graph, train.x[:10], calibration="bias")
    with pytest.raises(ValueError, match="calib_images=64, but calib_x has 20"):
        eventsnn.convert(graph, train.x[:20], calibration="bias", calib_images=64)
    with pytest.raises(ValueError, match="unknown preset"):
        eventsnn.convert(graph, train.x[:20], preset="Paper")


def test_convert_sets_v_init_and_records_settings(shipped):
    graph, train, _ = shipped
    net = eventsnn.convert(graph, train.x[:32], calibration="none", v_init=0.25, norm="percentile")
    assert all(float(p.v_init) == 0.25 for p in net.populations if p.kind == "if")
    assert all(not np.any(p.v_init) for p in net.populations if p.kind != "if")
    assert net.meta["v_init"] == 0.25 and net.meta["calibration"] == "none"
    assert net.meta["preset"] == "default" and net.meta["norm"] == "percentile"


# ----------------------------------------------------------------------------- calibration


def test_calibration_lowers_layer_errors_on_held_back_images(shipped):
    """Bias calibration on 64 training images lowers the mean per-layer rate error
    |E[r] − E[a]| on 50 held-back test images (5 per class), and never touches the ANN graph."""
    from eventsnn.convert.layer_calibration import _rates, _targets

    graph, train, test = shipped
    T = 16
    x_held = test.x[::20]
    before_out = graph.forward(x_held)
    params = {n.name: {k: v.copy() for k, v in n.params.items()} for n in graph.nodes}
    net = eventsnn.convert(graph, train.x[:256], preset="paper", v_init=0.5, norm="percentile",
                           percentile=99.9)
    targets = _targets(graph, net, x_held, 50)
    err0 = rate_errors(net, _rates(net, x_held, T, 50), targets)
    rep = calibrate_layers(graph, net, train.x[np.random.default_rng(0).permutation(500)[:64]], T,
                           mode="bias", passes=2)
    err1 = rate_errors(net, _rates(net, x_held, T, 50), targets)
    assert np.mean(list(err1.values())) < 0.7 * np.mean(list(err0.values()))
    assert np.mean(list(rep["rate_error"][1].values())) < np.mean(list(rep["rate_error"][0].values()))
    np.testing.assert_array_equal(graph.forward(x_held), before_out)
    for n in graph.nodes:
        for k, v in n.params.items():
            np.testing.assert_array_equal(v, params[n.name][k])


def test_calibrate_layers_validates(shipped):
    graph, train, _ = shipped
    net = eventsnn.convert(graph, train.x[:32], preset="paper")
    with pytest.raises(ValueError, match="at least 16 images"):
        calibrate_layers(graph, net, train.x[:8], 8, mode="bias")
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate_layers(graph, net, train.x[:32], 8, mode="full")
    with pytest.raises(ValueError, match="passes must be a positive integer"):
        calibrate_layers(graph, net, train.x[:32], 8, passes=0)


@pytest.mark.parametrize("argv, match", [
    (["--v-init", "1.5"], r"\[0, 1\)"),
    (["--calibrate", "bias", "--calib", "8"], "needs at least 16 calibration images"),
    (["--calib-T", "0"], "--calib-T: expected an integer >= 1"),
])
def test_cli_rejects_bad_conversion_settings(tmp_path, capsys, argv, match):
    import re

    from eventsnn.cli import main

    assert main(["convert", "--out", str(tmp_path / "n.npz"), *argv]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_cli_paper_preset_writes_the_paper_network(tmp_path):
    from eventsnn.cli import main
    from eventsnn.network import load_network

    assert main(["convert", "--preset", "paper", "--calib", "64", "--out", str(tmp_path / "n.npz")]) == 0
    net = load_network(tmp_path / "n.npz")
    assert net.meta["preset"] == "paper" and net.meta["norm"] == "burst-percentile"
    assert net.meta["calibration"] == "none" and net.meta["v_init"] == 0.0


def test_mmse_subsample_does_not_depend_on_batching():
    rng = np.random.default_rng(3)
    acts = np.maximum(rng.normal(0, 1, (12, 2, 6, 6)), 0).astype(np.float32)
    whole = MMSEAccumulator(acts.shape[1:], 12, 5, True, 16, 0.5, keep=50)
    whole.update(acts)
    parts = MMSEAccumulator(acts.shape[1:], 12, 5, True, 16, 0.5, keep=50)
    for part in np.array_split(acts, 5):
        parts.update(part)
    assert whole.p_keep < 1
    np.testing.assert_array_equal(whole.result()[0], parts.result()[0])
