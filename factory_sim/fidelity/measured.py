"""Measured operating points: one exact serving configuration, simulated as the row names it.

Each row (one deployment driven by a closed loop of clients at fixed input/output lengths,
with its measured TTFT and TPOT) is simulated with no configuration search, using the stack
profile of its framework, GPU generation and date. Rows that cannot be scored are listed
with the reason, never dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from factory_sim.catalog import builtin_names, builtin_path
from factory_sim.config.hardware import load_hardware
from factory_sim.config.model import load_model
from factory_sim.config.stack import SoftwareStack, load_stack
from factory_sim.errors import ConfigError
from factory_sim.fidelity.deployments import (
    MODEL_ALIASES,
    PREFILL_CHUNK_TOKENS,
    Skip,
    catalog_names,
    row_number,
    row_precisions,
    row_shape,
    row_size,
    row_stack,
    row_text,
    served_formats,
)
from factory_sim.perf.shape import ReplicaShape
from factory_sim.progress import emit
from factory_sim.results.metrics import latencies
from factory_sim.sim.engine import FleetLayout, PoolLayout, simulate
from factory_sim.studies.workers import map_jobs, worker_count

MEASURED_POINT_COLUMNS = {"system", "model", "backend", "mode", "isl", "osl", "concurrency", "ttft_ms", "tpot_ms"}


# Closed-loop runs as the NVIDIA Dynamo benchmark recipes run them: `genai-perf profile
# --concurrency C --request-count 10*C --warmup-request-count 2*C` with ignore_eos and
# min_tokens = max_tokens = OSL (ai-dynamo/dynamo, benchmarks/llm/perf.sh). aiperf, its successor,
# waits for every warm-up response before profiling starts (aiperf docs, "Warmup Phase
# Configuration"), so the profiled phase starts with all C clients at once and its mean is over
# all 10*C requests, the first burst of prompts included.
REQUESTS_PER_CLIENT = 10


# What the measured points' own source generates, for trying the rows under it (opt-in; the
# validation does not use them, docs/fidelity.md says why): aiconfigurator's benchmark script
# runs `aiperf profile --concurrency C --num-requests C*50 --warmup-request-count 2*C`
# (ai-dynamo/aiconfigurator, generator/config/backend_templates/benchmark/bench_run.sh.j2,
# BENCH_MULTI_ROUND default 50), and its engine configs give an aggregated worker a step of
# max_batch_size + ISL + 1500 tokens (generator/rule_plugin/{trtllm,vllm,sglang}.rule: TensorRT-LLM's
# max_num_tokens, vLLM's max_num_batched_tokens, and SGLang's max_prefill_tokens = ISL + 1500 with
# enable_mixed_chunk, which counts the running decodes against it).
SOURCE_REQUESTS_PER_CLIENT = 50
SOURCE_PROMPT_HEADROOM_TOKENS = 1500


# Output lengths of a simulated run vary uniformly within +-5% of the row's OSL (a modelling
# device, not a property of the harness: its lengths are exact). With identical lengths the
# simulated clients stay in lock-step forever: a first-round cohort's prompts share one step,
# its requests finish together and return together, and every later round waits for the whole
# cohort's prefill. Measured runs do not: Llama-3.1-70B FP8 on one B200 under vLLM at 32 clients,
# 1k/1k, measures a mean TTFT of 262 ms, while one step prefilling a cohort of eight 1k prompts
# takes 255 ms even at 100% of FP8 peak. What breaks the cohorts there (stream-end jitter,
# tokenization, scheduler races) is not modelled; a small spread of lengths breaks them here.
# That row predicts 1,225 ms with no spread, 1,183 at 0.1%, 311 at 2%, 264 at 5%, 254 at 10% and
# 245 at 30%: above ~2% the cohorts dissolve within a round and the value matters little.
OUTPUT_LENGTH_SPREAD = 0.05


MIN_REQUESTS = 10


MAX_REQUESTS = 40_000


@dataclass(frozen=True)
class Deployment:
    fleet: FleetLayout
    isl: int
    osl: int
    concurrency: int
    config: str


def builtin_measured_points_path() -> Path:
    return builtin_path("reference", "measured_points")


def is_measured_points(df: pd.DataFrame) -> bool:
    return MEASURED_POINT_COLUMNS <= set(df.columns)


def load_points(path: str | Path | None) -> pd.DataFrame:
    p = Path(path) if path else builtin_measured_points_path()
    try:
        df = pd.read_csv(p)
    except FileNotFoundError:
        raise ConfigError("SCENARIOS", f"no such file: {p}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError("SCENARIOS", f"{p} is not a readable CSV file: {exc}") from None
    if not is_measured_points(df):
        missing = ", ".join(sorted(MEASURED_POINT_COLUMNS - set(df.columns)))
        raise ConfigError("SCENARIOS", f"{p} is not a measured-points file: missing columns {missing}")
    return df


@cache
def fitted_ids() -> frozenset[str]:
    """Ids of the rows any built-in stack profile was fitted to (its `fitted_to`)."""
    return frozenset(r for name in builtin_names("stack") for r in load_stack(name).fitted_to)


def mark_sample(df: pd.DataFrame) -> pd.DataFrame:
    """A `sample` column: "in sample" for rows a built-in profile was fitted to, else "out of sample"."""
    if "id" in df:
        df["sample"] = np.where(df["id"].isin(fitted_ids()), "in sample", "out of sample")
    return df


def deployment(row, stacks: dict[str, SoftwareStack] | None = None,
               prompt_headroom_tokens: int | None = None) -> Deployment:
    """The exact deployment a measured row describes, or Skip with the reason.
    `prompt_headroom_tokens` (None: PREFILL_CHUNK_TOKENS) gives a step ISL + that many prompt tokens."""
    hardware_names, model_names = catalog_names()
    system, model_name = str(row["system"]), str(row["model"])
    model_name = MODEL_ALIASES.get(model_name, model_name)
    if system not in hardware_names:
        raise Skip(f"system '{system}' has no hardware profile")
    if model_name not in model_names:
        raise Skip(f"model '{row['model']}' is not in the catalog")
    concurrency = row_number(row, "concurrency")
    if not concurrency or concurrency < 1:
        raise Skip("no client concurrency given")
    hw, model = load_hardware(system), load_model(model_name)
    stack, note = row_stack(hw, row_text(row, "backend"), row_text(row, "measured_date"), stacks)
    moe_format, attention_format, precision_note = row_precisions(row, model)
    precision, attention_precision = served_formats(hw, model, moe_format, attention_format)
    note = "; ".join(n for n in (note, precision_note) if n)
    c = int(concurrency)
    prompt_tokens = None if prompt_headroom_tokens is None else int(row["isl"]) + prompt_headroom_tokens
    if row["mode"] == "disagg":
        if row_number(row, "prefill_num_workers") is None or row_number(row, "decode_num_workers") is None:
            raise Skip("disaggregated row without prefill/decode worker counts")
        pools = []
        for role in ("prefill", "decode"):
            prefix = f"{role}_"
            shape = row_shape(row, prefix, hw, model, stack, precision, attention_precision, role)
            workers = row_size(row, f"{prefix}num_workers")
            batch = row_number(row, f"{prefix}batch_size", float(c)) * shape.dp_attention
            # a decode worker holds at most its batch; clients never wait on an artificial cap
            max_batch = max(int(batch), math.ceil(c / workers)) if role == "decode" else max(int(batch), 1)
            budget = step_budget(shape, max_batch, prompt_tokens)
            pools.append(PoolLayout(role, role, shape, workers, max_batch, budget))
        config = (f"disagg {pools[0].replicas}x[{pools[0].shape.describe()}] + "
                  f"{pools[1].replicas}x[{pools[1].shape.describe()}]")
    else:
        shape = row_shape(row, "", hw, model, stack, precision, attention_precision, "aggregated")
        # `batch_size` is a worker's batch limit and `concurrency` counts the whole deployment:
        # a row whose clients outnumber one worker's batch ran that many workers (e.g. 416
        # clients on TP2 workers of batch 13, measured at a 0.7 s TTFT with 15k prompts, which
        # one worker could only reach by queueing 400 of them), so the clients are spread over
        # ceil(C / batch) workers, each holding at most its batch.
        # The batch is per attention-DP rank of the row as listed (rows listing 64 ranks on
        # 8 GPUs list a batch of C / 64, see row_parallel_sizes).
        worker_batch = row_number(row, "batch_size")
        worker_batch = int(worker_batch) * row_size(row, "attention_dp_size") if worker_batch else c
        workers = max(1, math.ceil(c / worker_batch))
        max_batch = math.ceil(c / workers)
        pools = [PoolLayout("aggregated", "aggregated", shape, workers, max_batch,
                           step_budget(shape, max_batch, prompt_tokens))]
        config = f"agg {workers}x[{shape.describe()}]"
    drafts = row_number(row, "mtp_draft_tokens")
    if drafts and drafts > 0:
        # an MTP run (mtp_runs.label_mtp_runs: the file does not say so, its InferenceX twins do):
        # the decode side drafts with the profile's acceptance, as InferenceX's MTP points do
        if not stack.mtp_acceptance:
            raise Skip(f"an MTP run, and stack {stack.name} sets no mtp_acceptance")
        pools = [replace(p, shape=replace(p.shape, mtp_draft_tokens=int(drafts), mtp_acceptance=stack.mtp_acceptance,
                                          mtp_acceptance_sd=stack.mtp_acceptance_sd or 0.0))
                 if p.role != "prefill" else p for p in pools]
        note = "; ".join(n for n in (note, f"MTP {int(drafts)} draft(s), acceptance {stack.mtp_acceptance:.3g}") if n)
    fleet = FleetLayout(str(row.get("id", "row")), tuple(pools), "least_outstanding_tokens")
    config = f"{config} c={c} {row.get('backend', '')} stack={stack.name}" + (f" ({note})" if note else "")
    return Deployment(fleet, int(row["isl"]), int(row["osl"]), c, config)


def step_budget(shape: ReplicaShape, max_batch: int, prompt_tokens: int | None = None) -> int:
    """Prompt tokens a step of a measured deployment may carry, on top of the batch's decode
    tokens. TensorRT-LLM's max_num_tokens holds per attention-DP rank, and so does vLLM's
    max_num_batched_tokens (each DP rank is an engine); SGLang divides its chunked-prefill
    size among the DP ranks (server_args `_handle_data_parallelism`), so its ranks share one.
    `prompt_tokens` (None: PREFILL_CHUNK_TOKENS) sets the prompt tokens per rank; SGLang's ranks
    then share at most one chunk of PREFILL_CHUNK_TOKENS."""
    prompt = (PREFILL_CHUNK_TOKENS if prompt_tokens is None else prompt_tokens) * shape.dp_attention
    if shape.stack.framework == "sglang":
        prompt = min(prompt, PREFILL_CHUNK_TOKENS)
    return prompt + max_batch


def spread_lengths(mean_tokens: int, n: int, spread: float, seed: int) -> np.ndarray:
    """n lengths uniform within mean x (1 +- spread), rounded, at least 1; seeded.

    Antithetic pairs (mean + d, mean - d) keep the sample mean at `mean_tokens` to rounding,
    so the spread moves requests out of step without changing the work of the run.
    """
    if spread <= 0 or n < 2:
        return np.full(n, mean_tokens, dtype=np.int64)
    half = np.random.default_rng(seed).uniform(-spread, spread, (n + 1) // 2)
    offsets = np.empty(n)
    offsets[0::2] = half
    offsets[1::2] = -half[: n // 2]
    return np.maximum(1, np.round(mean_tokens * (1.0 + offsets))).astype(np.int64)


def predict(row, seed: int = 0, stacks: dict[str, SoftwareStack] | None = None,
            output_spread: float | None = None, requests_per_client: int | None = None,
            prompt_headroom_tokens: int | None = None) -> tuple[float, float, str]:
    """Predicted mean TTFT and mean TPOT in ms for a measured row, and the configuration used.

    As the benchmark harness runs it: every client starts at t=0 and the means are over all
    requests of the run, so the first burst of prompts counts as it does in the measurement;
    output lengths spread by `output_spread` (None: OUTPUT_LENGTH_SPREAD) so that later rounds
    fall out of step (0: the harness's exact lengths); `requests_per_client` (None:
    REQUESTS_PER_CLIENT) and `prompt_headroom_tokens` (see `deployment`) try other harnesses.
    """
    dep = deployment(row, stacks, prompt_headroom_tokens)
    per_client = REQUESTS_PER_CLIENT if requests_per_client is None else requests_per_client
    n = int(min(MAX_REQUESTS, max(MIN_REQUESTS, per_client * dep.concurrency)))
    tokens_in = np.full(n, dep.isl, dtype=np.int64)
    spread = OUTPUT_LENGTH_SPREAD if output_spread is None else output_spread
    tokens_out = spread_lengths(dep.osl, n, spread, seed)
    sim = simulate(dep.fleet, tokens_in, tokens_out, concurrency=dep.concurrency, seed=seed)
    measured = sim.trace.done
    if not measured.any():
        raise Skip("no request finished in the measurement window")
    lat = latencies(sim.trace)
    return float(np.nanmean(lat["ttft_s"][measured])) * 1e3, float(np.nanmean(lat["tpot_s"][measured])) * 1e3, \
        dep.config


def _score_rows(args) -> list[dict]:
    rows, stacks, spread, harness = args if isinstance(args, tuple) else (args, None, None, {})
    out = []
    for row in rows:
        base = {k: row.get(k) for k in ("id", "system", "model", "backend", "mode", "isl", "osl", "concurrency")}
        try:
            ttft, tpot, config = predict(row, stacks=stacks, output_spread=spread, **harness)
        except (Skip, ConfigError) as why:
            emit("validation", "measured points")
            out.append({**base, "quantity": "", "predicted": np.nan, "published": np.nan, "rel_error": np.nan,
                        "config": "", "skipped": str(why)})
            continue
        emit("validation", "measured points")
        for quantity, predicted in (("ttft_ms", ttft), ("tpot_ms", tpot)):
            published = float(row[quantity])
            out.append({**base, "quantity": quantity, "predicted": predicted, "published": published,
                        "rel_error": (predicted - published) / published, "config": config, "skipped": ""})
    return out


def validate_points(points: pd.DataFrame, *, jobs: int | None = None,
                    stacks: dict[str, SoftwareStack] | None = None,
                    output_spread: float | None = None, requests_per_client: int | None = None,
                    prompt_headroom_tokens: int | None = None) -> pd.DataFrame:
    """One row per (measured row, quantity) scored, plus one row per skipped measured row.
    `stacks` replaces built-in profiles by name; `output_spread` the spread of output lengths;
    `requests_per_client` and `prompt_headroom_tokens` the harness (see `predict`)."""
    records = points.to_dict("records")
    workers = worker_count(jobs, len(records))
    harness = {"requests_per_client": requests_per_client, "prompt_headroom_tokens": prompt_headroom_tokens}
    if workers == 1 or len(records) < 8:
        scored = _score_rows((records, stacks, output_spread, harness))
    else:  # several chunks per process, so a slow chunk does not leave a core idle
        chunks = [(records[i::workers * 4], stacks, output_spread, harness) for i in range(workers * 4)]
        scored = [r for part in map_jobs(_score_rows, chunks, workers) for r in part]
    df = mark_sample(pd.DataFrame(scored))
    order = {rid: i for i, rid in enumerate(points["id"])} if "id" in points else {}
    if order:
        df = df.sort_values("id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return df
