"""The conversion-settings sweep (eventsnn.sweep) and `eventsnn sweep`."""

import json

import numpy as np
import pytest

import eventsnn
from eventsnn.sweep import _combos, pareto_front, sweep, write_sweep


def test_pareto_front_by_hand():
    acc = [0.9, 0.8, 0.95, 0.85, 0.9]
    cost = [1.0, 0.5, 2.0, 0.7, 1.2]
    # (0.9, 1.2) is dominated by (0.9, 1.0); every other point is optimal
    assert pareto_front(acc, cost).tolist() == [True, True, True, True, False]
    assert pareto_front([0.5, 0.5], [1.0, 1.0]).tolist() == [True, True]  # ties dominate nothing


def test_combos_drop_settings_the_norm_ignores():
    c = _combos({"norm": ["mmse", "percentile"], "percentile": [99.0, 99.9]})
    assert c == [{"norm": "mmse"}, {"norm": "percentile", "percentile": 99.0},
                 {"norm": "percentile", "percentile": 99.9}]
    with pytest.raises(ValueError, match="non-empty list"):
        _combos({"norm": []})


def test_sweep_on_the_shipped_model(tmp_path, shipped_model):
    graph, train, test = shipped_model
    x, y = test.x[::25], test.y[::25]
    res = sweep(graph, train.x[:64], x, y, T=8, progress=False,
                grid={"norm": ["percentile"], "percentile": [99.9], "v_init": [0.0, 0.5]},
                base={"calibration": "none"})
    assert len(res["rows"]) == 2 and res["n_images"] == 40 and res["T"] == 8
    for r in res["rows"]:
        net = eventsnn.convert(graph, train.x[:64], timesteps=8, **r["settings"])
        sim = eventsnn.simulate(net, x, 8, progress=False)
        assert r["accuracy"] == sim.accuracy(y)[-1]
        # per-connection quotients summed vs the quotient of the sum: equal up to rounding
        assert r["synops_per_image"] == pytest.approx(sim.total_synops() / len(x), rel=1e-12)
    assert any(r["pareto"] for r in res["rows"])
    paths = write_sweep(res, tmp_path, title="shipped")
    assert json.loads(paths["json"].read_text())["rows"][0]["settings"]
    assert paths["markdown"].read_text().count("norm=percentile, percentile=99.9") == 2
    if "plot" in paths:
        assert paths["plot"].stat().st_size > 0
    with pytest.raises(ValueError, match="T must be an integer >= 1"):
        sweep(graph, train.x[:64], x, y, T=0)


def test_cli_sweep(tmp_path, capsys):
    from eventsnn.cli import main

    rc = main(["sweep", "-n", "30", "--T", "4", "--norm", "percentile", "--percentile", "99.9",
               "--v-init", "0.5", "--calibrate", "none", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    assert "Pareto front" in capsys.readouterr().out
    assert (tmp_path / "sweep.json").is_file() and (tmp_path / "sweep.md").is_file()
