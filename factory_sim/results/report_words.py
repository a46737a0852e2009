"""The experiment, a plan or a sweep in words, for the report's "What was simulated"."""

from __future__ import annotations

from typing import Any

import yaml

from factory_sim.errors import ConfigError
from factory_sim.results.labels import field_label
from factory_sim.studies.assemble import fleet_layouts

# -- what was simulated -------------------------------------------------------------------------

def experiment_from_text(text: str):
    """The experiment a results folder holds, or (None, why not)."""
    from factory_sim.studies.assemble import parse_experiment

    try:
        return parse_experiment(yaml.safe_load(text), source="experiment.yaml"), ""
    except ConfigError as exc:
        return None, str(exc)
    except yaml.YAMLError as exc:
        return None, f"experiment.yaml is not YAML: {exc}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:g} ms"


def _pool_words(pool) -> str:
    shape = pool.shape
    parts = shape.parallelism(dp="attention-DP", mtp="MTP {} drafts")
    per = f"{shape.gpus} GPU{'s' if shape.gpus > 1 else ''}"
    return (f"{pool.role} {pool.replicas} × ({per}: {' '.join(parts)}, {shape.precision.upper()}, "
            f"stack {shape.stack.name}, batch ≤ {pool.max_batch})")


def describe_experiment(exp, command: dict[str, Any], frontier: bool = False) -> list[tuple[str, str]]:
    """The experiment in words, as (what, words) pairs; `frontier`: as `factory-sim frontier`
    drives it (closed-loop clients at a ladder of concurrencies, no SLO applied)."""
    from factory_sim.studies.run import mean_lengths

    model = exp.model_spec
    spec = exp.workload_spec
    mean_in, mean_out = mean_lengths(exp)
    kind = "mixture-of-experts" if model.is_moe else "dense"
    out = [("Model", f"{model.display_name} ({kind}, {model.total_params / 1e9:,.0f}B parameters, "
                     f"{model.active_params_per_token / 1e9:,.0f}B active per token)")]
    arrivals = spec.arrivals
    how = {"poisson": "Poisson arrivals", "gamma": "bursty (gamma) arrivals", "closed_loop": "closed-loop clients",
           "trace": "arrivals replayed from a trace", "diurnal": "a daily arrival-rate curve",
           "sessions": "multi-turn sessions"}.get(arrivals.kind, arrivals.kind)
    out.append(("Workload", f"{spec.name}: {how}; prompts of {mean_in:,.0f} tokens and answers of "
                            f"{mean_out:,.0f} tokens on average"
                + (f" ({spec.description})" if spec.description else "")))
    requests = command.get("options", {}).get("requests") or spec.requests
    if frontier:
        from factory_sim.studies.frontier import REQUESTS_PER_CLIENT

        ladder = command.get("options", {}).get("points")
        out.append(("Load", "closed-loop clients, each sending its next request when the last one finishes, at "
                            + (f"{ladder} concurrencies" if ladder else "a ladder of concurrencies")
                            + " per fleet from 1 to the most its decode replicas batch; every request counts "
                              "(no SLO is applied)"))
        out.append(("Requests", f"{requests:,} per simulation, or {REQUESTS_PER_CLIENT} per client where more; "
                                f"seed {exp.seed}"))
    else:
        out += _load_words(exp, requests)
    out += _fleet_words(exp)
    return out


def _load_words(exp, requests: int) -> list[tuple[str, str]]:
    out = [("Requests", f"{requests:,} per simulation (runs are lengthened to reach steady state), seed "
                        f"{exp.seed}")]
    if exp.traffic_classes:
        out.append(("Traffic classes", "; ".join(f"{c.name} ({c.share:g} share): TTFT ≤ {c.ttft_s:g} s, TPOT ≤ "
                                                 f"{_ms(c.tpot_s)}" for c in exp.traffic_classes)))
    else:
        out.append(("SLO tiers", "; ".join(f"{t.name}: TTFT ≤ {t.ttft_s:g} s and TPOT ≤ {_ms(t.tpot_s)}"
                                           for t in exp.slo_tiers)))
    load = exp.load
    if load.mode == "max_goodput":
        out.append(("Load", f"for each fleet and tier, the highest load at which at least "
                            f"{load.target_attainment:.0%} of requests meet the tier (max goodput)"))
    else:
        what = (f"{load.rate_per_s:g} requests/s" if load.rate_per_s else
                f"{load.concurrency} clients" if load.concurrency else "the workload's own rate")
        out.append(("Load", f"fixed at {what}"))
    return out


def _fleet_words(exp) -> list[tuple[str, str]]:
    out = []
    for plan in fleet_layouts(exp):
        hw = ", ".join(f"{gpus} × {h.display_name}" for h, gpus in plan.gpus_by_hardware())
        layout = "disaggregated" if plan.disaggregated else "aggregated"
        pools = "; ".join(_pool_words(p) for p in plan.pools)
        ref = " (the reference for cost ratios)" if plan.name == exp.reference else ""
        out.append((f"Fleet {plan.name}", f"{hw}, {layout}{ref}: {pools}; router {plan.router_policy}"))
    cost = exp.cost
    if cost.basis == "tier":
        prices = []
        for h in {h.name: h for plan in fleet_layouts(exp) for h, _ in plan.gpus_by_hardware()}.values():
            price = getattr(h.usd_per_gpu_hour, cost.tier) * cost.price_scale
            prices.append(f"{h.name} ${price:.3f}/GPU-hour" + (" (placeholder)" if h.placeholder_price else ""))
        out.append(("Prices", f"the {cost.tier} price tier"
                              + (f" × {cost.price_scale:g}" if cost.price_scale != 1 else "") + ": "
                              + ", ".join(prices)))
    else:
        out.append(("Prices", f"ownership cost: capital over {cost.tco.years:g} years at "
                              f"{cost.tco.cost_of_capital:.0%}, power at ${cost.tco.usd_per_kwh:g}/kWh, facility "
                              f"${cost.tco.facility_usd_per_kw_month:g}/kW-month"))
    if exp.faults_on:
        out.append(("Faults", "on: hardware failures are simulated and their cost reported"))
    return out


def spec_words(spec: dict, kind: str) -> list[tuple[str, str]]:
    """A plan's or a sweep's file in words (from its YAML: it is not loaded again)."""
    out: list[tuple[str, str]] = []
    if kind == "plan":
        slo = spec.get("slo", {})
        demand = spec.get("demand", {})
        want = (f"{demand['rate_per_s']:g} requests/s" if demand.get("rate_per_s") else
                f"{demand.get('output_tokens_per_s', 0):g} output tokens/s")
        out += [("Model", str(spec.get("model", ""))),
                ("Workload", spec["workload"] if isinstance(spec.get("workload"), str) else "given in the file"),
                ("Demand", want),
                ("SLO", f"TTFT ≤ {slo.get('ttft_s', 0):g} s and TPOT ≤ {_ms(slo.get('tpot_s', 0))} for at least "
                        f"{spec.get('target_attainment', 0.9):.0%} of requests"),
                ("Candidates", ", ".join(str(c.get("name")) for c in spec.get("candidates", [])))]
        if spec.get("power_budget_mw"):
            out.append(("Power budget", f"{spec['power_budget_mw']:g} MW"))
    elif kind == "sweep":
        axes = spec.get("sweep", {})
        base = spec.get("base", "default")
        out.append(("Base experiment", base if isinstance(base, str) else "given in the file"))
        for kind, words in (("grid", "every combination of"), ("zip", "varied together")):
            if axes.get(kind):
                out.append((f"Varied ({kind})", f"{words}: " + "; ".join(
                    f"{field_label(k)} in {', '.join(str(v) for v in vals)}" for k, vals in axes[kind].items())))
    return out


