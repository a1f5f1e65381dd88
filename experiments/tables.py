#!/usr/bin/env python3
"""Markdown tables and Fig.-5-style figures from whatever results exist in experiments/results.

Tables (printed, and written to ``experiments/results/tables.md``):

* Table 1 (ablation): accuracy at T = 16, 32, 64 of every configuration of ``configs.CONFIGS``;
* Table 2: ANN accuracy and Burst Γ=5 + LIPool accuracy at T = 16 ... 256, gap to the ANN on
  the same images;
* energy: E_SNN / E_ANN (eventsnn.energy, 4.6 pJ per MAC, 0.9 pJ per AC) and SynOps per image;
* firing rates: mean IF firing rate and per-layer rates (spikes / neuron / step);
* calibration sensitivity (``calibration.py``) and pooling correct ratio (``pooling.py``).

Every row says how many test images it covers; a run that does not cover the whole test set
is marked *partial (n / N)* and is never presented as a full one.

Figures (``experiments/figures``): accuracy vs T per model (baseline vs ours), per-layer firing
rates, pooling correct ratio vs T.

Usage: ``.venv/bin/python experiments/tables.py`` (cheap: reads JSON only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from configs import CONFIGS, FIGURES, OURS, RESULTS, TABLE1_ORDER  # noqa: E402

T1 = (16, 32, 64)
T2 = (16, 32, 64, 128, 256)
MODEL_ORDER = ["fmnist-vgg", "fmnist-resnet8", "mnist-vgg", "mnist-resnet8", "cifar10-vgg", "resnet20",
               "resnet56"]


def load_results():
    out = {}
    for d in sorted(p for p in RESULTS.iterdir() if p.is_dir() and not p.name.startswith("dev")):
        res = {}
        for f in d.glob("*.json"):
            if f.stem in CONFIGS:
                res[f.stem] = json.loads(f.read_text())
        extra = {f.stem: json.loads(f.read_text()) for f in d.glob("*.json") if f.stem not in CONFIGS}
        if res or extra:
            out[d.name] = {"configs": res, **extra}
    order = {m: i for i, m in enumerate(MODEL_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def coverage(r):
    if r.get("complete"):
        return f"{r['n_images']} (full)"
    return f"**partial {r['n_images']}/{r['n_test']}**"


def pct(v, nd=2):
    return "–" if v is None else f"{100 * v:.{nd}f}"


def acc_at(r, t):
    return r["accuracy"][t - 1] if r and t <= r["T"] else None


def table1(model, res):
    cfgs = res["configs"]
    if not cfgs:
        return ""
    lines = [f"#### Table 1 (ablation), {model}: accuracy (%) at T steps",
             "", "| configuration | " + " | ".join(f"T={t}" for t in T1)
             + " | ANN, same images | images | ± s.e. at last T |",
             "|---|" + "---|" * (len(T1) + 3)]
    for c in TABLE1_ORDER:
        r = cfgs.get(c)
        if r is None:
            lines.append(f"| {CONFIGS[c]['label']} | " + " | ".join("not run" for _ in T1) + " | | | |")
            continue
        if "same_as" in r:
            lines.append(f"| {CONFIGS[c]['label']} | = {CONFIGS[r['same_as']]['label']} (no MaxPool in "
                         "this network) |" + " |" * (len(T1) + 2))
            continue
        lines.append(f"| {r['label']} | " + " | ".join(pct(acc_at(r, t)) for t in T1)
                     + f" | {pct(r['ann_accuracy_same_images'])} | {coverage(r)} | "
                     f"{pct(r['stderr_final'], 1)} |")
    return "\n".join(lines) + "\n"


def table2(results):
    lines = ["#### Table 2: ANN vs Burst Γ=5 + LIPool, accuracy (%) (gap to the ANN on the same images)",
             "", "| model | ANN (full test set) | ANN (same images) | "
             + " | ".join(f"T={t}" for t in T2) + " | images |",
             "|---|---|---|" + "---|" * (len(T2) + 1)]
    for model, res in results.items():
        r = res["configs"].get(OURS)
        ann = res.get("ann", {})
        if r is None or "same_as" in r:
            continue
        a = r["ann_accuracy_same_images"]
        cells = []
        for t in T2:
            v = acc_at(r, t)
            cells.append("–" if v is None else f"{100 * v:.2f} ({100 * (v - a):+.2f})")
        lines.append(f"| {model} | {pct(ann.get('accuracy'))} | {pct(a)} | " + " | ".join(cells)
                     + f" | {coverage(r)} |")
    return "\n".join(lines) + "\n"


def energy_table(results):
    lines = ["#### Energy E_SNN / E_ANN (eventsnn.energy, 4.6 pJ/MAC, 0.9 pJ/AC; SNN = SynOps·AC + input MACs)",
             "", "| model | configuration | " + " | ".join(f"T={t}" for t in T2)
             + " | SynOps/image at T=64 | mean IF rate at T=64 | images |",
             "|---|---|" + "---|" * (len(T2) + 3)]
    for model, res in results.items():
        for c in TABLE1_ORDER:
            r = res["configs"].get(c)
            if r is None or "same_as" in r:
                continue
            e = r.get("energy", {})
            cells = [f"{e[str(t)]['ratio']:.3f}" if str(t) in e and "ratio" in e[str(t)] else "–"
                     for t in T2]
            syn = e.get("64", {}).get("synops_per_image")
            rate = r.get("mean_if_firing_rate", {}).get("64")
            lines.append(f"| {model} | {r['label']} | " + " | ".join(cells)
                         + f" | {'–' if syn is None else f'{syn:.3g}'} | "
                         f"{'–' if rate is None else f'{rate:.3f}'} | {coverage(r)} |")
    return "\n".join(lines) + "\n"


def iso_accuracy_table(results, margins=(0.02, 0.01, 0.005)):
    """Steps and energy each configuration needs to come within a margin of the ANN.

    E_SNN/E_ANN at step t = (Σ_{t'≤t} SynOps(t') · E_AC + input MACs · E_MAC) / (MACs_ANN · E_MAC),
    the same model as eventsnn.energy (45nm-fp32), from the per-step SynOps of the merged runs.
    """
    mac, ac = 4.6, 0.9
    lines = ["#### Iso-accuracy: first T at which the SNN is within a margin of the ANN (same images), "
             "and E_SNN/E_ANN at that T",
             "", "| model | configuration | " + " | ".join(f"ANN − {100 * m:g} pt: T, energy" for m in margins)
             + " | images |", "|---|---|" + "---|" * (len(margins) + 1)]
    for model, res in results.items():
        macs = res.get("ann", {}).get("macs_per_image")
        if not macs:
            continue
        for c in TABLE1_ORDER:
            r = res["configs"].get(c)
            if r is None or "same_as" in r or not r.get("synops_per_image_per_step"):
                continue
            a = r["ann_accuracy_same_images"]
            cum, cells = 0.0, []
            cums = []
            for v in r["synops_per_image_per_step"]:
                cum += v
                cums.append(cum)
            for m in margins:
                t = next((i + 1 for i, v in enumerate(r["accuracy"]) if v >= a - m), None)
                if t is None:
                    cells.append(f"> {r['T']}")
                else:
                    e = (cums[t - 1] * ac + r["input_macs_per_image"] * mac) / (macs * mac)
                    cells.append(f"{t}, {e:.2f}")
            lines.append(f"| {model} | {r['label']} | " + " | ".join(cells) + f" | {coverage(r)} |")
    return "\n".join(lines) + "\n"


def timing_table(results):
    """Simulation wall time of every merged run (sum over its chunks) and the machine."""
    lines = ["#### Run times (simulation wall time summed over chunks; conversion not included)",
             "", "| model | configuration | T | images | wall time | ms / image | machine | engine commits |",
             "|---|---|---|---|---|---|---|---|"]
    for model, res in results.items():
        for c in TABLE1_ORDER:
            r = res["configs"].get(c)
            if r is None or "same_as" in r:
                continue
            lines.append(f"| {model} | {c} | {r['T']} | {r['n_images']} | {r['wall_s'] / 60:.1f} min | "
                         f"{r['ms_per_image']:.0f} | {', '.join(r['machines'])} | {len(r['commits'])} |")
    return "\n".join(lines) + "\n"


def firing_table(model, res):
    cfgs = [c for c in TABLE1_ORDER if c in res["configs"] and "same_as" not in res["configs"][c]
            and c not in ("pnorm-avgpool", "pnorm-lipool")]
    if not cfgs:
        return ""
    base = res["configs"][cfgs[0]]
    t = "64" if all("64" in next(iter(res["configs"][c]["firing_rate"].values()), {}) for c in cfgs) \
        else str(min(res["configs"][c]["T"] for c in cfgs))
    pops = list(base["firing_rate"].keys())
    lines = [f"#### Firing rate per layer, {model} (spikes / neuron / step over T={t}; λ = scale of the layer)",
             "", "| layer | " + " | ".join(f"{c} rate | {c} λ" for c in cfgs) + " |",
             "|---|" + "---|---|" * len(cfgs)]
    for p in pops:
        row = []
        for c in cfgs:
            r = res["configs"][c]
            rate = r["firing_rate"].get(p, {}).get(t)
            lam = r.get("scales", {}).get(p)
            lam_s = "(pool)" if lam is None else (f"{lam:.3g}" if not isinstance(lam, list) else "ch-wise")
            row += ["–" if rate is None else f"{rate:.4f}", lam_s]
        lines.append(f"| {p} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def calibration_table(model, res):
    cal = res.get("calibration")
    if not cal:
        return ""
    lines = [f"#### Calibration sensitivity, {model} ({cal['config_note']}; {cal['n_images']} test images"
             f"{' (full test set)' if cal.get('complete') else ' — random subset of ' + str(cal.get('n_test', '?'))}"
             f", T up to {cal['T']})",
             "", "| variant | norm | p | calib. n | channel-wise | "
             + " | ".join(f"T={t}" for t in cal["report_T"]) + " | mean λ | mean IF rate | E_SNN/E_ANN | images |",
             "|---|---|---|---|---|" + "---|" * (len(cal["report_T"]) + 4)]
    for v in cal["variants"]:
        lines.append(f"| {v['name']} | {v['norm']} | {v['percentile']} | {v['calib_n']} | "
                     f"{'yes' if v['channelwise'] else 'no'} | "
                     + " | ".join(pct(v["accuracy"][t - 1]) for t in cal["report_T"])
                     + f" | {v['mean_scale']:.3g} | {_last(v['mean_if_firing_rate']):.3f} | "
                     f"{_last(v['energy_ratio']):.3f} | {v['n_images']} |")
    return "\n".join(lines) + "\n"


def _last(d):
    """Value at the largest T of a {str(T): value} dict (nan when empty)."""
    if not d:
        return float("nan")
    k = max(d, key=int)
    return float("nan") if d[k] is None else d[k]


def pooling_table(model, res):
    pool = res.get("pooling")
    if not pool:
        return ""
    ts = sorted({int(t) for v in pool["runs"].values() for t in v})
    lines = [f"#### Pooling correct ratio (Fig. 5b), {model}: share of positive pooling outputs within "
             f"1 spike of the max-pooled input count ({pool['n_images']} test images, {pool['config_note']})",
             "", "| pooling | layer | " + " | ".join(f"T={t}" for t in ts) + " |",
             "|---|---|" + "---|" * len(ts)]
    for kind, byT in pool["runs"].items():
        layers = sorted({p["name"] for v in byT.values() for p in v["pooling"]})
        for name in layers:
            cells = []
            for t in ts:
                v = byT.get(str(t))
                q = None if v is None else next((p for p in v["pooling"] if p["name"] == name), None)
                cells.append("–" if q is None or q["correct_ratio"] is None else f"{q['correct_ratio']:.3f}")
            lines.append(f"| {kind} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ figures

def figures(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(exist_ok=True)
    made = []
    for model, res in results.items():
        cfgs = {c: r for c, r in res["configs"].items() if "same_as" not in r}
        if cfgs:
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            for c in TABLE1_ORDER:
                r = cfgs.get(c)
                if r is None:
                    continue
                ts = range(1, r["T"] + 1)
                ls = "-" if c == OURS else "--"
                lab = r["label"] + ("" if r["complete"] else f" [partial {r['n_images']}/{r['n_test']}]")
                ax.plot(list(ts), [100 * a for a in r["accuracy"]], ls, label=lab, lw=1.6 if c == OURS else 1.1)
            a = res.get("ann", {}).get("accuracy")
            if a is not None:
                ax.axhline(100 * a, color="k", lw=0.8, ls=":", label=f"ANN {100 * a:.2f} % (full test set)")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("time steps T")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{model}: accuracy vs T")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            p = FIGURES / f"{model}_accuracy_vs_T.png"
            fig.savefig(p, dpi=120)
            plt.close(fig)
            made.append(p)

            fig, ax = plt.subplots(figsize=(max(6.4, 0.35 * len(next(iter(cfgs.values()))["firing_rate"])), 4.2))
            width = 0.8 / len(cfgs)
            for i, c in enumerate(c for c in TABLE1_ORDER if c in cfgs):
                r = cfgs[c]
                t = "64" if all("64" in v for v in r["firing_rate"].values()) else str(r["T"])
                names = list(r["firing_rate"].keys())
                ax.bar([j + i * width for j in range(len(names))],
                       [r["firing_rate"][n][t] for n in names], width, label=f"{r['label']} (T={t})")
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
            ax.set_xticklabels(names, rotation=75, fontsize=6)
            ax.set_ylabel("firing rate (spikes / neuron / step)")
            ax.set_title(f"{model}: firing rate per layer")
            ax.legend(fontsize=7)
            fig.tight_layout()
            p = FIGURES / f"{model}_firing_rates.png"
            fig.savefig(p, dpi=120)
            plt.close(fig)
            made.append(p)
        pool = res.get("pooling")
        if pool:
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            for kind, byT in pool["runs"].items():
                ts = sorted(int(t) for t in byT)
                layers = sorted({q["name"] for v in byT.values() for q in v["pooling"]})
                for name in layers:
                    ys = []
                    for t in ts:
                        q = next((q for q in byT[str(t)]["pooling"] if q["name"] == name), None)
                        ys.append(None if q is None or q["correct_ratio"] is None else q["correct_ratio"])
                    ax.plot(ts, ys, "-o" if "(lipool)" in kind else "--s", label=f"{kind} {name}")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("time steps T")
            ax.set_ylabel("correct ratio")
            ax.set_title(f"{model}: pooling correct ratio (Fig. 5b)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            p = FIGURES / f"{model}_pooling_correct_ratio.png"
            fig.savefig(p, dpi=120)
            plt.close(fig)
            made.append(p)
    return made


def main():
    results = load_results()
    parts = ["<!-- generated by experiments/tables.py from experiments/results; do not edit -->", ""]
    for model, res in results.items():
        parts.append(table1(model, res))
    parts.append(table2(results))
    parts.append(energy_table(results))
    parts.append(iso_accuracy_table(results))
    for model, res in results.items():
        parts.append(firing_table(model, res))
    parts.append(timing_table(results))
    for model, res in results.items():
        parts.append(calibration_table(model, res))
        parts.append(pooling_table(model, res))
    text = "\n".join(p for p in parts if p)
    (RESULTS / "tables.md").write_text(text)
    readme = RESULTS.parent / "README.md"
    if readme.is_file():  # refresh the generated block of the README
        r = readme.read_text()
        a, b = "<!-- tables:begin -->", "<!-- tables:end -->"
        if a in r and b in r:
            r = r[:r.index(a) + len(a)] + "\n" + text + "\n" + r[r.index(b):]
            readme.write_text(r)
    print(text)
    for p in figures(results):
        print("wrote", p)


if __name__ == "__main__":
    main()
