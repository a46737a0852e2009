"""The quick start's cost ratios beside the measured ones.

For each SLO tier of the built-in default experiment, reads InferenceX's measured DeepSeek-R1
1k/1k points at the interactivity the tier's TPOT target stands for (1 / TPOT) and prints
each hardware's envelope of output tokens/s/GPU there (every framework, precision and date),
its ratio to H200's, and the $/M-token ratio at the hardware profiles' hyperscaler
$/GPU-hour, as the README quotes them. Given a `summary.csv` of the default run
(`factory-sim run --out DIR`), it prints the simulated figures beside them: each hardware's
cheapest fleet per tier, its tokens/s/GPU and its cost relative to the cheapest H200 fleet.

    python benchmarks/default_ratios.py
    factory-sim run --out default_run && python benchmarks/default_ratios.py --summary default_run/summary.csv

Benchmarks run on demand; the test suite never runs them.
"""

from __future__ import annotations

import argparse

import pandas as pd

from factory_sim.fidelity import inferencex as ix
from factory_sim.fidelity.claims import usd_per_gpu_hour
from factory_sim.fidelity.envelopes import envelope_at, frontier_envelope
from factory_sim.results.tables import best_by_hardware
from factory_sim.studies.assemble import default_experiment

MODEL = "DeepSeek-R1-0528"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

REFERENCE = "h200"
OTHERS = ("gb200_nvl72", "b200")


def measured(tiers: dict[str, float]) -> pd.DataFrame:
    """Per tier and hardware: the measured envelope's tokens/s/GPU at the tier's interactivity,
    its ratio to H200's and H200's $/M over the hardware's."""
    points = ix.load_points()
    p = points[(points["model"] == MODEL) & (points["isl"] == 1024) & (points["osl"] == 1024)]
    targets = list(tiers.values())
    curves = {hw: envelope_at(*frontier_envelope(g["interactivity_tok_s_user"].to_numpy(),
                                                 g["output_tok_s_per_gpu"].to_numpy()), targets)
              for hw, g in p.groupby("hardware") if hw in (REFERENCE, *OTHERS)}
    rows = []
    for i, (tier, interactivity) in enumerate(tiers.items()):
        ref = curves[REFERENCE][i]
        for hw in (REFERENCE, *OTHERS):
            tok = curves[hw][i]
            price = usd_per_gpu_hour(REFERENCE) / usd_per_gpu_hour(hw)
            rows.append({"tier": tier, "tok_s_user": interactivity, "hardware": ix.HARDWARE.get(hw, hw),
                         "tok_s_per_gpu": tok, "tokens_ratio": tok / ref, "cheaper_x": tok / ref * price,
                         "cost_vs_ref": 1.0 / (tok / ref * price)})
    return pd.DataFrame(rows)


def simulated(summary: pd.DataFrame) -> pd.DataFrame:
    """Each hardware's cheapest fleet per tier in a run's summary, with its tokens/s/GPU."""
    best = best_by_hardware(summary)
    tok = summary.set_index(["tier", "fleet"])["tokens_per_s_per_gpu"]
    best["tok_s_per_gpu"] = [tok.get((t, f), float("nan")) for t, f in zip(best["tier"], best["fleet"], strict=True)]
    return best.rename(columns={"cost_ratio_to_best_reference": "cost_vs_ref"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", help="summary.csv of `factory-sim run --out DIR` (the default experiment)")
    args = parser.parse_args()
    tiers = {t.name: 1.0 / t.tpot_s for t in default_experiment().slo_tiers}
    pd.set_option("display.width", 160)
    print(f"measured (InferenceX {MODEL} 1k/1k envelopes; hyperscaler $/GPU-hour), at 1 / each tier's TPOT:")
    print(measured(tiers).to_string(index=False, float_format=_num))
    if args.summary:
        print("\nsimulated (each hardware's cheapest fleet per tier):")
        sim = simulated(pd.read_csv(args.summary))
        print(sim[["tier", "hardware", "fleet", "tok_s_per_gpu", "usd_per_m_goodput_tokens", "cost_vs_ref"]]
              .to_string(index=False, float_format=_num))


if __name__ == "__main__":
    main()
