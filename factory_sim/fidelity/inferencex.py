"""The interactivity frontier, measured against InferenceX: each point scored as the benchmark ran it.

InferenceX (SemiAnalysis InferenceMAX / InferenceX, https://inferencex.semianalysis.com, benchmark code
github.com/SemiAnalysisAI/InferenceX) measures output tokens/s per GPU against interactivity by sweeping client
concurrency. Its shipped points are in data/reference/inferencex/points.csv.gz; `factory-sim validate FILE`
recognises the format by its header (`is_inferencex_file`).

What the benchmark's client does (read in SemiAnalysisAI/InferenceX):
- `benchmarks/benchmark_lib.sh` `run_benchmark_serving` runs `utils/bench_serving/benchmark_serving.py
  --dataset-name random --random-input-len ISL --random-output-len OSL --random-range-ratio R --num-prompts N
  --max-concurrency CONC --request-rate inf --ignore-eos --num-warmups 2*CONC`: a closed loop of CONC clients; the
  2*CONC warm-up requests finish before the measured phase starts, so every client starts at once on an engine with
  nothing in flight.
- The recipes (e.g. `benchmarks/dsr1_fp8_h200_trt.sh`, `gptoss_fp4_b200_trt_slurm.sh`) pass
  `--num-prompts $(( CONC * 10 ))`: ten requests per client.
- `sample_random_requests` draws each prompt length uniformly from the integers [int(ISL * R), ISL] and each output
  length from [int(OSL * R), OSL], independently; `--ignore-eos` makes the engine produce exactly that many tokens.
- R is the `RANDOM_RANGE_RATIO: 0.8` of `.github/workflows/benchmark-tmpl.yml` and `benchmark-multinode-tmpl.yml`.
  The points agree: their median (e2e - TTFT) / TPOT + 1, the median output length, is 0.903 x OSL over 2,148 points
  (uniform on [0.8, 1] x OSL has median 0.9), and total / output tokens equals (ISL + OSL) / OSL to 0.1% at the
  median.
- Throughput is total output tokens over the run's duration (first request sent to last finished, the start-up burst
  and the drain included); interactivity is 1 / median TPOT, TPOT = (latency - TTFT) / (output tokens - 1); TTFT the
  median.

What is assumed:
- The disaggregated (Dynamo) runs use the same client and range ratio (the multinode template sets the same
  RANDOM_RANGE_RATIO).
- GPUs of a single-node point are its `tp` (the result files say "all per-GPU values divide by tp"); with
  `dp_attention` the tp GPUs each run attention on their own sequences (TensorRT-LLM `enable_attention_dp`, SGLang
  `--enable-dp-attention`) and the MoE is split `ep` ways.
- A disaggregated point's GPUs per side come from its notes (`num_prefill_gpu`, `num_decode_gpu`, and worker counts
  where given; otherwise workers of `tp` GPUs). A side whose listed tp is smaller than its workers' GPUs runs
  attention DP over the rest when its `dp_attention` says so, else tensor parallelism over the whole worker (noted
  in the config).
- MTP: the TensorRT-LLM recipe (`benchmarks/dsr1_fp4_b200_trt_mtp.sh`) drafts 1 token with attention DP and 3
  without; the same is assumed for the other frameworks. Each draft is accepted, given the one before, with the
  profile's `mtp_acceptance` (fitted to these points).
- v1 dashboard rows (Oct 2025) publish total tokens/s/GPU, not output: the published output tokens/s/GPU is derived
  as total x OSL / (ISL + OSL) (exact at the mean lengths, see above; `published_basis` says so), and they publish
  no TTFT. Their parallelism lists tp only: vLLM's recipes launch `vllm serve --tensor-parallel-size $TP` without
  expert parallelism or data parallelism (`benchmarks/gptoss_fp4_h200_slurm.sh`), so vLLM rows are read as EP1; the
  other frameworks' MoE rows set EP and attention DP per configuration and are skipped, as are v1 GB200 rows, whose
  tp is the run's GPU total.
- The stack profile is the one `select_stack` picks by framework, GPU generation and date, unless the container
  image names a framework version that exactly one other profile of that framework and generation covers (its
  `version`): then that one (`image_stack`).
- In inferencex_harness: a point's request path is its client's (INFERENCEX_FRONTEND_LATENCY_S); SGLang polls as
  launched (SGLANG_RECV_INTERVAL); Dynamo's first token comes from the decode side (DYNAMO_FIRST_TOKEN_FROM_DECODE);
  DeepSeek-R1's prefill MoE stall is the DeepSeek-fitted profile's (DEEPSEEK_PREFILL_MOE_FROM); Dynamo-TRT's decode
  workers hold the recipes' batch cap (DYNAMO_DECODE_HEADROOM).

A point is simulated with SIM_ROUNDS requests per client (the benchmark's ten; see there for what fewer would cost),
and the three quantities are computed the benchmark's way from the simulated requests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from factory_sim.catalog import builtin_names, builtin_path
from factory_sim.config.hardware import load_hardware
from factory_sim.config.model import load_model
from factory_sim.config.stack import SoftwareStack, load_stack
from factory_sim.errors import ConfigError
from factory_sim.fidelity.deployments import Skip
from factory_sim.fidelity.inferencex_harness import (  # noqa: F401 - the harness's constants, read here
    DEEPSEEK_PREFILL_MOE_FROM,
    DYNAMO_DECODE_HEADROOM,
    DYNAMO_FIRST_TOKEN_FROM_DECODE,
    DYNAMO_PREFILL_EFFICIENCY,
    INFERENCEX_FRONTEND_LATENCY_S,
    INFERENCEX_MOE_SETUP_SHARE,
    SGLANG_RECV_INTERVAL,
    capped_decode,
    slower_prefill,
)
from factory_sim.fidelity.measured import Deployment, deployment
from factory_sim.fidelity.mlperf import MTP_ACCEPTANCE
from factory_sim.perf.stacks import override_stack, select_stack, stack_generation
from factory_sim.progress import emit
from factory_sim.results.metrics import latencies
from factory_sim.sim.engine import simulate
from factory_sim.studies.workers import as_finished, worker_count

# Columns that identify the format (a header holding them all is an InferenceX points file).
INFERENCEX_COLUMNS = frozenset({
    "point_id", "hardware", "framework", "model", "precision", "isl", "osl", "concurrency", "disaggregated",
    "mtp_or_spec", "tp", "ep", "dp_attention", "output_tok_s_per_gpu_all_gpus", "total_tok_s_per_gpu",
    "interactivity_tok_s_user", "ttft_ms",
})
QUANTITIES = ("output_tok_s_per_gpu", "interactivity_tok_s_user", "ttft_ms")
RESULT_COLUMNS = ["point_id", "quantity", "predicted", "published", "rel_error", "hardware", "framework", "model",
                  "isl", "osl", "concurrency", "date", "image", "disaggregated", "mtp", "interactivity_band",
                  "source_repo", "stack", "published_basis", "config", "skip_reason"]

# InferenceX names -> catalog names.
HARDWARE = {"h100": "h100_sxm", "h200": "h200_sxm", "b200": "b200_hgx", "gb200_nvl72": "gb200_nvl72"}
AMD_HARDWARE = frozenset({"mi300x", "mi325x", "mi355x"})
MODELS = {"DeepSeek-R1-0528": "deepseek_r1", "gpt-oss-120b": "gpt_oss_120b",
          "Llama-3.3-70B-Instruct": "llama3_3_70b"}
# framework -> (serving engine of the stack profiles, disaggregated by construction)
FRAMEWORKS = {"trtllm": ("tensorrt-llm", False), "sglang": ("sglang", False), "vllm": ("vllm", False),
              "dynamo-trtllm": ("tensorrt-llm", True), "dynamo-sglang": ("sglang", True)}
# Checkpoint formats as the measured-points validation names them (its `gemm_quant`/`moe_quant`).
PRECISIONS = {"fp8": "fp8", "fp4": "nvfp4"}

# The benchmark's client (module docstring): lengths uniform on [int(L * R), L] with R = RANDOM_RANGE_RATIO
# (SemiAnalysisAI/InferenceX .github/workflows/benchmark-tmpl.yml), and CONC * 10 prompts (benchmarks/*.sh
# `--num-prompts $(( $CONC * 10 ))`).
RANDOM_RANGE_RATIO = 0.8
BENCHMARK_REQUESTS_PER_CLIENT = 10
# Requests per client simulated per point: the benchmark's own ten, so each point is simulated exactly as it ran; all
# 5,000 points take about 4 minutes with --jobs 2 on 2 cores (benchmarks/inferencex_rounds.py). Fewer are possible
# (`rounds`): the ten-round run is then rebuilt by weighting the start-up and drain rounds as 1/10 each
# (`_round_weights`) and by running the missing middle rounds at the simulated steady rate. Three rounds take about a
# quarter of the time but, on the 2,717 points scored, shift the predicted output tokens/s/GPU by a median of -2.7%
# (|shift| 90th percentile 4.7%: the rate after one round is not yet steady), interactivity by +0.1% (1.3%) and median
# TTFT by +0.5% (26%).
SIM_ROUNDS = BENCHMARK_REQUESTS_PER_CLIENT
# MTP drafts of the TensorRT-LLM DeepSeek-R1 recipe (benchmarks/dsr1_fp4_b200_trt_mtp.sh: MTP=1 with attention DP, 3
# without); assumed for the other frameworks too.
MTP_DRAFTS_WITH_ATTENTION_DP = 1
MTP_DRAFTS_WITHOUT_ATTENTION_DP = 3


# Interactivity bands (tokens/s/user) of the error breakdown: the frontier's low-latency end,
# where cost ratios are read, is told apart from its throughput end.
INTERACTIVITY_BANDS = ((0.0, 20.0), (20.0, 50.0), (50.0, 100.0), (100.0, 200.0), (200.0, None))
INTERACTIVITY_BAND_LABELS = tuple(f"{lo:g}-{hi:g}" if hi is not None else f"{lo:g}+"
                                  for lo, hi in INTERACTIVITY_BANDS)
# Interactivities at which the hardware ratios are read (the claims' range, issue "seed claims").
RATIO_INTERACTIVITY = (20.0, 35.0, 50.0, 75.0, 100.0, 150.0)


# -- the file -------------------------------------------------------------------------------

def builtin_points_path() -> Path:
    return builtin_path("inferencex", "points")


def is_inferencex(columns: Iterable[str]) -> bool:
    return INFERENCEX_COLUMNS <= set(columns)


def is_inferencex_file(path: str | Path) -> bool:
    """Does the file's header say it is an InferenceX points file? (False for unreadable files:
    the caller's own reader reports those.)"""
    try:
        return is_inferencex(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return False


def load_points(path: str | Path | None = None) -> pd.DataFrame:
    p = Path(path) if path else builtin_points_path()
    try:
        df = pd.read_csv(p, dtype={"tp": str, "ep": str, "dp_attention": str})
    except FileNotFoundError:
        raise ConfigError("FILE", f"no such file: {p}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError("FILE", f"{p} is not a readable CSV file: {exc}") from None
    if not is_inferencex(df.columns):
        missing = ", ".join(sorted(INFERENCEX_COLUMNS - set(df.columns)))
        raise ConfigError("FILE", f"{p} is not an InferenceX points file: missing columns {missing}")
    return df


def filter_points(df: pd.DataFrame, *, hardware: Sequence[str] | None = None, model: Sequence[str] | None = None,
                  framework: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """Points of these hardware (InferenceX or catalog names), models (either name) and frameworks."""
    if hardware:
        catalog_to_ix = {v: k for k, v in HARDWARE.items()}
        wanted = {catalog_to_ix.get(h, h) for h in hardware}
        df = df[df["hardware"].isin(wanted)]
    if model:
        catalog_to_ix = {v: k for k, v in MODELS.items()}
        wanted = {catalog_to_ix.get(m, m) for m in model}
        df = df[df["model"].isin(wanted)]
    if framework:
        df = df[df["framework"].isin(framework)]
    return df.head(limit) if limit is not None else df


# -- one point -> the deployment it measured --------------------------------------------------

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _num(p: dict, key: str) -> float | None:
    value = p.get(key)
    if _missing(value):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise Skip(f"{key} '{value}' is not a number") from None
    return out if math.isfinite(out) else None


def _flag(value, key: str) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0"):
        return True
    if text in ("false", "0", "0.0", "none", "nan", ""):
        return False
    raise Skip(f"{key} '{value}' is not true or false")


def _whole(value, key: str) -> int:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise Skip(f"{key} '{value}' is not a whole number") from None
    if not math.isfinite(out) or out < 1 or out != int(out):
        raise Skip(f"{key} '{value}' is not a whole number >= 1")
    return int(out)


def _split(value, key: str) -> tuple[str, str]:
    """'P<prefill>/D<decode>' -> (prefill, decode)."""
    m = re.fullmatch(r"P([^/]+)/D(.+)", str(value).strip())
    if not m:
        raise Skip(f"{key} '{value}' of a disaggregated point is not P<prefill>/D<decode>")
    return m.group(1), m.group(2)


def _note_count(notes: str, key: str) -> int | None:
    m = re.search(rf"\b{key}=(\d+)", notes)
    return int(m.group(1)) if m else None


def point_date(p: dict) -> str | None:
    """YYYY-MM-DD of the run: stated, else estimated ('<= 2025-10-28' reads as that date)."""
    for key in ("run_date", "run_date_est"):
        value = p.get(key)
        if not _missing(value):
            m = re.search(r"\d{4}-\d{2}(-\d{2})?", str(value))
            if m:
                return m.group(0)
    return None


def is_v1(p: dict) -> bool:
    """An October 2025 (v1) dashboard row: total tokens/s/GPU only, parallelism as tp alone."""
    return _missing(p.get("output_tok_s_per_gpu_all_gpus")) and not _missing(p.get("total_tok_s_per_gpu")) \
        and _missing(p.get("num_gpus"))


def published_values(p: dict) -> dict[str, tuple[float, str]]:
    """{quantity: (published value, the column it comes from)} for the quantities the point publishes."""
    out: dict[str, tuple[float, str]] = {}
    isl, osl = p.get("isl"), p.get("osl")
    for quantity, column in (("output_tok_s_per_gpu", "output_tok_s_per_gpu_all_gpus"),
                             ("interactivity_tok_s_user", "interactivity_tok_s_user"), ("ttft_ms", "ttft_ms")):
        try:
            value = _num(p, column)
        except Skip:
            value = None
        if value is not None and value > 0:
            out[quantity] = (value, column)
    if "output_tok_s_per_gpu" not in out:
        try:
            total, i, o = _num(p, "total_tok_s_per_gpu"), float(isl), float(osl)
        except (Skip, TypeError, ValueError):
            total = None
        if total is not None and total > 0 and i > 0 and o > 0:
            out["output_tok_s_per_gpu"] = (total * o / (i + o), "total_tok_s_per_gpu x osl/(isl+osl)")
    return out


def _framework_version(image: str | None) -> tuple[int, int] | None:
    """(major, minor) of the serving framework a container image names, None when it names
    another product's version (Dynamo runtime images) or none."""
    if not image:
        return None
    for pattern in (r"tensorrt-llm/release:(\d+)\.(\d+)", r"trtllm-(\d+)\.(\d+)", r"sglang[^:]*:v?(\d+)\.(\d+)",
                    r"vllm-openai:v?(\d+)\.(\d+)"):
        m = re.search(pattern, image)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _version_range(text: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The framework versions a profile's `version` text covers: '1.2 (...)', '1.0-1.1 (...)', '0.5.x'."""
    m = re.match(r"\s*(\d+)\.(\d+|x)(?:\.\w+)?(?:\s*-\s*(\d+)\.(\d+))?", text)
    if not m or m.group(2) == "x" and m.group(3):
        return None
    lo_minor = 0 if m.group(2) == "x" else int(m.group(2))
    lo = (int(m.group(1)), lo_minor)
    if m.group(3):
        return lo, (int(m.group(3)), int(m.group(4)))
    return lo, (lo[0], 10**6) if m.group(2) == "x" else lo


def image_stack(hw, framework: str, image: str | None, date: str | None) -> tuple[SoftwareStack, str]:
    """The stack profile of a point: by framework, generation and date (`select_stack`), unless the
    image's framework version is covered by exactly one profile of that framework and generation."""
    stack, note = select_stack(hw, framework, date)
    version = _framework_version(image)
    if version is None:
        return stack, note
    generation = stack_generation(hw.generation)
    covering = []
    for name in builtin_names("stack"):
        s = load_stack(name)
        r = _version_range(s.version) if s.generation == generation and s.framework == stack.framework else None
        if r and r[0] <= version <= r[1]:
            covering.append(s)
    if len(covering) == 1 and covering[0].name != stack.name:
        return covering[0], f"image {version[0]}.{version[1]} is {covering[0].name}'s version"
    return stack, note


def measured_row(p: dict) -> tuple[dict, dict]:
    """The point as a measured-points row (validate.deployment's schema) and what the schema
    cannot say ({'mtp_drafts', 'notes', 'stack', 'stack_note'}), or Skip with the reason."""
    hardware = str(p.get("hardware", "")).strip()
    if hardware in AMD_HARDWARE:
        raise Skip(f"AMD hardware ({hardware}): no hardware profile in the catalog")
    if hardware not in HARDWARE:
        raise Skip(f"hardware '{hardware}' has no hardware profile")
    model_name = MODELS.get(str(p.get("model", "")).strip())
    if model_name is None:
        raise Skip(f"model '{p.get('model')}' is not in the catalog")
    framework = str(p.get("framework", "")).strip()
    if framework not in FRAMEWORKS:
        raise Skip(f"framework '{framework}' is not modelled (no stack profile)")
    backend, disagg_framework = FRAMEWORKS[framework]
    precision = str(p.get("precision", "")).strip()
    if precision not in PRECISIONS:
        raise Skip(f"precision '{precision}' is not modelled")
    for key in ("isl", "osl", "concurrency"):
        if _missing(p.get(key)):
            raise Skip(f"{key} not given")
    isl, osl, conc = _whole(p["isl"], "isl"), _whole(p["osl"], "osl"), _whole(p["concurrency"], "concurrency")
    if not published_values(p):
        raise Skip("no published output tokens/s/GPU, interactivity or TTFT")
    disagg = _flag(p.get("disaggregated"), "disaggregated")
    if disagg != disagg_framework:
        raise Skip(f"framework '{framework}' with disaggregated={disagg} is not a configuration the benchmark runs")
    hw, model = load_hardware(HARDWARE[hardware]), load_model(model_name)
    date = point_date(p)
    image = None if _missing(p.get("image")) else str(p["image"])
    stack, stack_note = image_stack(hw, backend, image, date)
    quant = PRECISIONS[precision]
    row = {"id": str(p.get("point_id", "point")), "system": HARDWARE[hardware], "model": model_name,
           "backend": backend, "precision": precision, "gemm_quant": quant, "moe_quant": quant,
           "mode": "disagg" if disagg else "agg", "isl": isl, "osl": osl, "concurrency": conc,
           "measured_date": date}
    notes: list[str] = []
    v1 = is_v1(p)
    if disagg:
        if v1:
            raise Skip("v1 dashboard row of a disaggregated run: tp is the run's GPU total; the prefill/decode "
                       "split is not stated")
        tp, ep, dp = (_split(p.get(k), k) for k in ("tp", "ep", "dp_attention"))
        text = "" if _missing(p.get("notes")) else str(p["notes"])
        decode_dp = False
        for i, side in enumerate(("prefill", "decode")):
            gpus = _note_count(text, f"num_{side}_gpu")
            if gpus is None:
                raise Skip(f"disaggregated point without its {side} GPU count (num_{side}_gpu in its notes)")
            side_tp, side_ep = _whole(tp[i], "tp"), _whole(ep[i], "ep")
            side_dp = _flag(dp[i], "dp_attention")
            workers = _note_count(text, f"{side}_workers")
            if workers is None:
                if side_dp and side_tp == 1:
                    raise Skip(f"{side}: attention DP listed with tp 1 and no worker count in its notes, so the "
                               "workers' GPU count is not stated")
                if gpus % side_tp:
                    raise Skip(f"{side}: {gpus} GPUs are not whole workers of tp {side_tp}")
                workers = gpus // side_tp
            if workers < 1 or gpus % workers:
                raise Skip(f"{side}: {gpus} GPUs do not split into {workers} equal workers")
            per_worker = gpus // workers
            attn_tp, attn_dp = _attention_split(side, side_tp, side_dp, per_worker, notes)
            if model.is_moe and per_worker % side_ep:
                raise Skip(f"{side}: ep {side_ep} does not divide its workers' {per_worker} GPUs")
            row.update({f"{side}_num_workers": workers, f"{side}_tp_size": attn_tp,
                        f"{side}_attention_dp_size": attn_dp, f"{side}_moe_ep_size": side_ep if model.is_moe else 1})
            decode_dp = side_dp
    else:
        tp = _whole(p.get("tp"), "tp")
        if v1 and model.is_moe:
            if backend != "vllm":
                raise Skip(f"v1 dashboard row of an MoE model on {framework}: expert parallelism and attention DP "
                           "not stated (its recipes set them per configuration)")
            ep, dp = 1, False
            notes.append("EP1 as vLLM's recipes launch it")
        else:
            ep = _whole(p.get("ep"), "ep") if model.is_moe else 1
            dp = _flag(p.get("dp_attention"), "dp_attention")
        if model.is_moe and tp % ep:
            raise Skip(f"ep {ep} does not divide tp {tp}")
        row.update({"tp_size": 1 if dp else tp, "attention_dp_size": tp if dp else 1,
                    "moe_ep_size": ep if model.is_moe else 1})
        decode_dp = dp
    mtp_drafts = 0
    if _flag(p.get("mtp_or_spec"), "mtp_or_spec"):
        method = str(p.get("spec_method", "mtp")).strip().lower()
        if method != "mtp":
            raise Skip(f"speculative decoding '{method}' is not modelled")
        if model.mtp_layers < 1:
            raise Skip(f"MTP on {model_name}, which has no multi-token-prediction module")
        mtp_drafts = MTP_DRAFTS_WITH_ATTENTION_DP if decode_dp else MTP_DRAFTS_WITHOUT_ATTENTION_DP
    return row, {"mtp_drafts": mtp_drafts, "notes": notes, "stack": stack, "stack_note": stack_note}


def _attention_split(side: str, tp: int, dp: bool, per_worker: int, notes: list[str]) -> tuple[int, int]:
    """(attention TP, attention DP) of a worker of `per_worker` GPUs listed as tp `tp`."""
    if tp == per_worker:
        return (1, tp) if dp else (tp, 1)
    if tp > per_worker or per_worker % tp:
        raise Skip(f"{side}: tp {tp} does not fit workers of {per_worker} GPUs")
    if dp:
        return tp, per_worker // tp
    notes.append(f"{side} tp {tp} listed on {per_worker}-GPU workers: read as TP{per_worker}")
    return per_worker, 1


def harness_stack(stack: SoftwareStack, p: dict | None = None,
                  stacks: dict[str, SoftwareStack] | None = None) -> SoftwareStack:
    """The profile with the request path InferenceX's client sees (INFERENCEX_FRONTEND_LATENCY_S)
    and, for point `p`, SGLang's request polling (SGLANG_RECV_INTERVAL), Dynamo's first token and
    DeepSeek-R1's prefill MoE stall (DEEPSEEK_PREFILL_MOE_FROM; `stacks` replaces its source by name)."""
    update = {"frontend_latency_s": INFERENCEX_FRONTEND_LATENCY_S,
              "prefill_moe_layer_latency_s": stack.prefill_moe_layer_latency_s * INFERENCEX_MOE_SETUP_SHARE,
              "prefill_moe_latency_s_per_gparam": stack.prefill_moe_latency_s_per_gparam * INFERENCEX_MOE_SETUP_SHARE}
    source = DEEPSEEK_PREFILL_MOE_FROM.get(str(stack.generation))
    if p is not None and MODELS.get(str(p.get("model"))) == "deepseek_r1" and source:
        source_stack = (stacks or {}).get(source) or load_stack(source)
        update["prefill_moe_layer_overhead_s"] = source_stack.prefill_moe_layer_overhead_s
        update["prefill_moe_overhead_s_per_gparam"] = source_stack.prefill_moe_overhead_s_per_gparam
    framework = str((p or {}).get("framework"))
    update["first_token_from_decode"] = DYNAMO_FIRST_TOKEN_FROM_DECODE and framework.startswith("dynamo")
    if p is not None and str(p.get("framework")) == "sglang":
        conc = _num(p, "concurrency") or 1
        steps = next((n for lo, n in SGLANG_RECV_INTERVAL.get(str(p.get("hardware")), ()) if conc >= lo), 0)
        update["scheduler_recv_interval_steps"] = steps
    return stack.model_copy(update=update)


def point_deployment(p: dict, stacks: dict[str, SoftwareStack] | None = None,
                     step_time: str | None = None,
                     prefill_efficiency: float | None = None, decode_headroom: float | None = None,
                     ) -> tuple[Deployment, int]:
    """The deployment a point measured (validate.deployment on its measured-points row, with the point's stack, its
    request path as InferenceX's client sees it, and MTP) and its MTP draft tokens. `stacks` replaces a profile by
    name (calibration evaluates candidate values this way); `step_time` sets the stack's step_time_backend (the same
    points priced by another step-time model); `prefill_efficiency` replaces DYNAMO_PREFILL_EFFICIENCY (disaggregated
    points' prefill workers), `decode_headroom` DYNAMO_DECODE_HEADROOM (Dynamo-TRT's decode batch cap; 0: none)."""
    if prefill_efficiency is None:
        prefill_efficiency = DYNAMO_PREFILL_EFFICIENCY
    decode_headroom = DYNAMO_DECODE_HEADROOM if decode_headroom is None else decode_headroom
    row, extra = measured_row(p)
    stack: SoftwareStack = extra["stack"]
    if stacks and stack.name in stacks:
        stack = stacks[stack.name]
    if step_time and step_time != stack.step_time_backend:
        stack = override_stack(stack, {"step_time_backend": step_time})
        extra["notes"].append(f"step time: {step_time}")
    stack = harness_stack(stack, p, stacks)
    date_stack, _ = select_stack(load_hardware(row["system"]), row["backend"], row["measured_date"])
    try:
        dep = deployment(row, stacks={date_stack.name: stack})
    except ConfigError as exc:
        raise Skip(exc.message) from None
    pools = []
    acceptance, spread = stack.mtp_acceptance or MTP_ACCEPTANCE, stack.mtp_acceptance_sd or 0.0
    for pool in dep.fleet.pools:
        if extra["mtp_drafts"] and pool.role != "prefill":
            pool = replace(pool, shape=replace(pool.shape, mtp_draft_tokens=extra["mtp_drafts"],
                                               mtp_acceptance=acceptance, mtp_acceptance_sd=spread))
        if pool.role == "prefill" and prefill_efficiency != 1.0:
            pool = replace(pool, shape=replace(pool.shape, stack=slower_prefill(pool.shape.stack, prefill_efficiency)))
        if pool.role == "decode" and p.get("framework") == "dynamo-trtllm":
            pool = capped_decode(pool, dep.concurrency, decode_headroom)
        pools.append(pool)
    config = dep.config  # names the stack `deployment` ran: the point's (`stacks` swapped it in)
    extras = [n for n in (extra["stack_note"], *extra["notes"]) if n]
    if extra["mtp_drafts"]:
        extras.insert(0, f"MTP {extra['mtp_drafts']} draft(s), acceptance {acceptance:.3g}")
    if extras:
        config += " [" + "; ".join(extras) + "]"
    return replace(dep, fleet=replace(dep.fleet, pools=tuple(pools)), config=config), extra["mtp_drafts"]


# -- the benchmark, simulated --------------------------------------------------------------------

def benchmark_lengths(tokens: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n lengths as the benchmark's client draws them: integers uniform on [int(tokens * R), tokens]."""
    return rng.integers(int(tokens * RANDOM_RANGE_RATIO), tokens + 1, size=n, dtype=np.int64)


def _round_weights(n: int, clients: int, rounds: int) -> np.ndarray:
    """Per-request weights that make `rounds` simulated rounds count like the benchmark's ten:
    the first (start-up burst) and last (drain) rounds 1/10 each, the middle rounds the rest."""
    r = np.minimum(np.arange(n) // clients, rounds - 1)
    full = BENCHMARK_REQUESTS_PER_CLIENT
    if rounds >= full:
        per_round = np.full(rounds, 1.0 / rounds)
    else:
        per_round = np.full(rounds, (full - 2) / full / max(rounds - 2, 1))
        per_round[0] = per_round[-1] = 1.0 / full
    counts = np.bincount(r, minlength=rounds)
    return per_round[r] / counts[r]


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    ok = np.isfinite(values) & (weights > 0)
    if not ok.any():
        return float("nan")
    order = np.argsort(values[ok], kind="stable")
    v, w = values[ok][order], weights[ok][order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, 0.5 * cum[-1])])


def simulate_point(dep: Deployment, *, rounds: int = SIM_ROUNDS, seed: int = 0) -> dict[str, float]:
    """Output tokens/s/GPU over all GPUs, interactivity (1 / median TPOT) and median TTFT (ms)
    of the deployment under the benchmark's closed loop, from `rounds` requests per client.

    Throughput is the benchmark's: all output tokens over the time from the first request sent
    to the last one finished. With fewer than the benchmark's ten rounds, the missing middle
    rounds are added at the steady rate measured between the first round's last finish and the
    drain, and the medians weight the rounds as a ten-round run would (`_round_weights`).
    """
    if rounds < 3:
        raise ValueError("rounds must be >= 3 (start-up, steady, drain)")
    c = dep.concurrency
    n = rounds * c
    rng = np.random.default_rng(seed)
    tokens_in, tokens_out = benchmark_lengths(dep.isl, n, rng), benchmark_lengths(dep.osl, n, rng)
    sim = simulate(dep.fleet, tokens_in, tokens_out, concurrency=c, seed=seed)
    tr = sim.trace
    if not tr.done.all():
        raise Skip(f"{int((~tr.done).sum())} of {n} simulated requests did not finish")
    lat = latencies(tr)
    finish = np.sort(tr.finish_s)
    produced = np.cumsum(tr.output_tokens[np.argsort(tr.finish_s, kind="stable")])
    out_total, duration = float(produced[-1]), float(finish[-1])
    steady_span = float(finish[n - c - 1] - finish[c - 1]) if n - c - 1 > c - 1 else 0.0
    if rounds < BENCHMARK_REQUESTS_PER_CLIENT and steady_span > 0:
        rate = float(produced[n - c - 1] - produced[c - 1]) / steady_span
        extra_tokens = (BENCHMARK_REQUESTS_PER_CLIENT - rounds) * c * float(np.mean(tr.output_tokens))
        out_total, duration = out_total + extra_tokens, duration + extra_tokens / rate
    if rounds >= BENCHMARK_REQUESTS_PER_CLIENT:  # every request counts alike, as in the benchmark
        tpot, ttft = float(np.nanmedian(lat["tpot_s"])), float(np.nanmedian(lat["ttft_s"]))
    else:
        w = _round_weights(n, c, rounds)
        tpot, ttft = _weighted_median(lat["tpot_s"], w), _weighted_median(lat["ttft_s"], w)
    return {"output_tok_s_per_gpu": out_total / duration / dep.fleet.gpus,
            "interactivity_tok_s_user": 1.0 / tpot if tpot > 0 else float("nan"),
            "ttft_ms": ttft * 1e3}


def interactivity_band(value: float) -> str:
    if value is None or not np.isfinite(value) or value <= 0:
        return ""
    return next(label for (_, hi), label in zip(INTERACTIVITY_BANDS, INTERACTIVITY_BAND_LABELS, strict=True)
                if hi is None or value < hi)


def score_point(p: dict, *, rounds: int = SIM_ROUNDS, seed: int = 0, step_time: str | None = None) -> list[dict]:
    """One result row per published quantity of the point: predicted, or the skip reason."""
    published = published_values(p)
    interactivity = published.get("interactivity_tok_s_user", (np.nan, ""))[0]
    base = {"point_id": p.get("point_id"), "hardware": p.get("hardware"), "framework": p.get("framework"),
            "model": p.get("model"), "isl": p.get("isl"), "osl": p.get("osl"), "concurrency": p.get("concurrency"),
            "date": point_date(p), "image": None if _missing(p.get("image")) else p.get("image"),
            "disaggregated": p.get("disaggregated"), "mtp": p.get("mtp_or_spec"),
            "interactivity_band": interactivity_band(interactivity), "source_repo": p.get("source_repo")}
    try:
        dep, _ = point_deployment(p, step_time=step_time)
        predicted = simulate_point(dep, rounds=rounds, seed=seed)
        config, stack, reason = dep.config, dep.fleet.pools[-1].shape.stack.name, ""
    except (Skip, ConfigError) as why:
        predicted, config, stack, reason = {}, "", "", str(why)
    rows = []
    for quantity in QUANTITIES if published else ("",):
        value, basis = published.get(quantity, (np.nan, ""))
        if quantity and quantity not in published:
            continue
        pred = predicted.get(quantity, np.nan)
        rel = (pred - value) / value if np.isfinite(pred) and value > 0 else np.nan
        rows.append({**base, "quantity": quantity, "predicted": pred, "published": value, "rel_error": rel,
                     "stack": stack, "published_basis": basis, "config": config,
                     "skip_reason": reason or ("" if np.isfinite(pred) else "no prediction")})
    return rows


def _score_chunk(args) -> list[dict]:
    records, rounds, seed, step_time = args
    out = []
    for p in records:
        out.extend(score_point(p, rounds=rounds, seed=seed, step_time=step_time))
        emit("validation", "InferenceX points")
    return out


def _cost(p: dict) -> float:
    """Relative simulation cost of a point (its requests x output tokens), for scheduling."""
    try:
        return float(p.get("concurrency") or 1) * float(p.get("osl") or 1)
    except (TypeError, ValueError):
        return 1.0


def validate_inferencex(points: pd.DataFrame, *, jobs: int | None = None, rounds: int = SIM_ROUNDS,
                        seed: int = 0, step_time: str | None = None) -> pd.DataFrame:
    """Result rows (RESULT_COLUMNS) for every point, scored or skipped with the reason, in file order;
    `step_time` prices every point's steps with that step_time_backend."""
    records = points.to_dict("records")
    workers = worker_count(jobs, len(records))
    # costliest points first, in small chunks, so no core idles at the end
    ordered = sorted(records, key=_cost, reverse=True) if workers > 1 else records
    size = max(1, min(8, len(ordered) // (workers * 8))) if workers > 1 else max(1, len(ordered))
    chunks = [(ordered[i:i + size], rounds, seed, step_time) for i in range(0, len(ordered), size)]
    out = [row for rows in as_finished(_score_chunk, chunks, jobs=workers) for row in rows]
    df = pd.DataFrame(out, columns=RESULT_COLUMNS)
    order = {pid: i for i, pid in enumerate(points["point_id"])}
    q_order = {q: i for i, q in enumerate(("", *QUANTITIES))}
    df["_o"] = df["point_id"].map(order)
    df["_q"] = df["quantity"].map(q_order)
    return df.sort_values(["_o", "_q"], kind="stable").drop(columns=["_o", "_q"]).reset_index(drop=True)


# -- errors ----------------------------------------------------------------------------------------

# The three collections the points come from (data/reference/inferencex/README.md).
