"""Software-stack profiles: how close a serving framework gets to the hardware's peaks.

Everything that is a property of software, not silicon, lives here, so "the same GPU with
better software" is one YAML change. Built-in profiles are in factory_sim/data/stacks/; each
value cites the measurement it came from or says it is an estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from factory_sim.catalog import builtin_names, load
from factory_sim.config.bounds import Efficiency, Fraction, StepSeconds, within
from factory_sim.errors import ConfigError


class GemmEfficiency(BaseModel):
    """Achievable fraction of dense peak for large GEMMs, per compute precision."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    bf16: Efficiency
    fp8: Efficiency
    fp4: Efficiency | None = None


class SoftwareStack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    framework: str
    version: str
    date: str  # when this software version was current, "YYYY-MM": picks the stack of a dated result
    # GPU generation the profile was measured on ("hopper" or "blackwell", which covers
    # Blackwell Ultra); None: a profile not meant for automatic selection.
    generation: str | None = None
    description: str = ""
    gemm_efficiency: GemmEfficiency
    # GEMM rows (tokens) per GPU at which efficiency reaches half its large-GEMM value:
    # small-M GEMMs run far below peak (measured_efficiency.csv conditions columns).
    gemm_half_efficiency_tokens: Annotated[float, within(0, 1e7, "GEMM rows per GPU")]
    # The same for the FP4 (NVFP4) GEMMs of the dense layers and attention projections, one
    # launch per weight matrix (the experts' grouped GEMMs keep gemm_half_efficiency_tokens):
    # block-scaled FP4 GEMMs reach their large-GEMM rate only at several hundred rows.
    # None: gemm_half_efficiency_tokens.
    fp4_gemm_half_efficiency_tokens: Annotated[float, within(0, 1e7, "GEMM rows per GPU")] | None = None
    # The FP4-to-FP8 dense peak ratio of the GPUs fp4_gemm_half_efficiency_tokens was fitted on
    # (2 on Blackwell). On a GPU whose FP4 tensor cores run a larger multiple of its FP8 rate
    # (Blackwell Ultra: 3, with B200's FP8 peak and HBM bandwidth) the rows scale by the ratio of
    # the two, so that the roll-off's time per weight is the one of the GPUs it was fitted on:
    # what the roll-off prices (small-M block-scaled GEMMs streaming weights and scale factors
    # through the SMs) does not run faster where only the FP4 multiply is faster. None: the rows
    # as given on every GPU.
    fp4_gemm_rolloff_fp4_fp8_ratio: Annotated[float, within(0, 100, "FP4 over FP8 dense peak")] | None = None
    # Rows of one tensor-core tile: a GEMM with fewer rows costs a full tile of compute.
    gemm_min_rows: Annotated[float, within(1, 65536, "rows of a tensor-core tile; today's are 64-256")]
    # Attention math's fraction of the BF16 peak: decode (and MLA's absorbed attention) ...
    attention_efficiency: Efficiency
    # ... and prefill, whose long causal tiles run the FlashAttention-style kernels near their
    # compute roofline. None: the decode figure.
    prefill_attention_efficiency: Efficiency | None = None
    # Decode attention math of an MLA model on attention-DP ranks (dp_attention > 1). Absorbed
    # MLA is one latent KV head shared by all query heads, so its attention GEMMs have heads x
    # queries rows: an attention-DP rank holds all the heads (128 for DeepSeek-R1) and fills the
    # tensor-core tile, where a TP8 rank's 16 heads fill an eighth of it. attention_efficiency,
    # fitted mostly to TP-split attention, then prices the DP rank's attention several times too
    # slow. None: attention_efficiency.
    mla_dp_attention_efficiency: Efficiency | None = None
    # Cost per sequence of one attention-DP rank's step, MLA models only (dp_attention > 1): with
    # mla_dp_attention_efficiency, a rank's decode attention priced as a part per sequence plus a
    # part per context token (an estimate of what grows with the sequences, not their context:
    # the MLA kernel's per-sequence set-up and split-KV reduction), so it is cheaper per context
    # token at long contexts than one efficiency makes it. Paid per sequence (logit row) of the
    # step over dp, as seq_overhead_s is. 0 leaves it out.
    mla_dp_seq_overhead_s: StepSeconds = 0.0
    hbm_efficiency: Efficiency
    # above 1: in-switch reductions (NVLink SHARP) halve the bytes an all-reduce moves
    nvlink_efficiency: Annotated[float, within(0, 1.2, "a fraction of the link's bandwidth (to 1.2 with in-switch "
                                                       "reductions)", above=True)]
    scaleout_efficiency: Efficiency
    collective_latency_s: StepSeconds
    comm_overlap_fraction: Fraction
    # Latency per peer of each expert-parallel all-to-all (the dispatch and the combine of every
    # MoE layer), on top of collective_latency_s: one message goes to each of the ep - 1 other
    # ranks and the layer waits for the last, so the fixed cost of a step grows with the EP
    # width. 0 leaves it out.
    ep_peer_latency_s: StepSeconds = 0.0
    # Spread (standard deviation) of one attention-DP rank's step time: each rank schedules,
    # samples and launches its own batch, and the ranks meet at every MoE all-to-all, so a step
    # of dp ranks lasts as long as the slowest of them: this spread times the expected largest
    # of dp standard normal draws (0.56 at 2 ranks, 1.42 at 8, 1.77 at 16, 2.07 at 32). Wide
    # attention-DP decode at a few sequences per rank then runs slower than the mean rank's
    # roofline. 0 leaves it out.
    adp_rank_jitter_s: StepSeconds = 0.0
    ep_load_imbalance: Annotated[float, within(1, 1000, "busiest expert rank over the mean; 1000 is all tokens on "
                                                        "one rank of 1000")]
    step_overhead_s: StepSeconds
    # Cost per step, on top of step_overhead_s, when the requests sample their tokens (a
    # temperature above 0) rather than take the most likely one: the benchmarks the constants
    # above were fitted to decode greedily (InferenceX's client and the MLPerf DeepSeek-R1 and
    # Llama references send temperature 0), while a workload with `sampling: stochastic`, such
    # as the MLPerf gpt-oss-120b benchmark (temperature 1.0 over the whole vocabulary), pays it
    # on every step. 0 leaves it out.
    stochastic_sampling_step_s: StepSeconds = 0.0
    # CPU work per sequence per step (sampling, stop checks, scheduling, detokenization):
    # what keeps a small model's TPOT flat across TP degrees at large batch on some engines
    seq_overhead_s: StepSeconds = 0.0
    layer_overhead_s: StepSeconds
    # Fixed cost per MLA attention layer per step, on top of layer_overhead_s: absorbed-MLA
    # decode runs a longer chain of small kernels than GQA attention (q and kv down-projections,
    # their two RMSNorms, RoPE on the rope slice, the q x W_UK and attention x W_UV batched
    # GEMMs, the query's quantisation, the MLA kernel), each with a latency that no batch size
    # amortises. 0 leaves it out.
    mla_layer_overhead_s: StepSeconds = 0.0
    # Hidden-sized BF16 activation vectors each token reads or writes per layer outside the
    # GEMMs and attention (norms, residual adds, RoPE, SwiGLU, activation quantization, MoE
    # permutation), after the engine's fusions: memory-bound kernels that TP does not split.
    # 0 leaves them out.
    activation_passes: Annotated[float, within(0, 10_000, "vector passes per token per layer")] = 0.0
    # Fixed cost of a step that carries prompt tokens, on top of step_overhead_s: engines
    # replay decode-only steps from CUDA graphs but run prefill steps eagerly (kernel launches,
    # MoE routing set-up, the scheduler's prefill bookkeeping). 0 prices prefill like decode.
    prefill_step_overhead_s: StepSeconds = 0.0
    # Latency a new prompt of an MoE model waits per MoE layer before its first token, beyond
    # its steps: measured TTFT of MoE models at a few clients sits 20-190 ms above the
    # prefill's roofline, in proportion to their MoE layers, while dense models show none.
    # It is priced as latency of the request, not as GPU time of the step: at 16-128 clients
    # the measured TPOTs show no such stall of the decodes that share the prompt's steps
    # (engines prepare a step on the host while the GPU runs the previous one, and an eager
    # MoE layer's routing set-up, sort, permute and host sync for the per-expert token counts
    # delay that prompt's own step). 0 leaves it out.
    prefill_moe_layer_latency_s: StepSeconds = 0.0
    # The part of it that does stall the step carrying the prompt (GPU time of every sequence in
    # that step), per MoE layer. 0 leaves it out.
    prefill_moe_layer_overhead_s: StepSeconds = 0.0
    # prefill_moe_layer_latency_s in proportion to the size of the model's MoE layers: seconds per
    # MoE layer per billion routed expert parameters in the layer (all experts, however they are
    # sharded; DeepSeek-R1/V3: 11.3, gpt-oss-120b: 3.2, Qwen3-235B: 2.4). On one engine, measured
    # TTFT at a few clients puts DeepSeek's MoE prefill set-up at several times gpt-oss-120b's per
    # layer, where one constant per layer fits neither. Added to it; 0 leaves it out.
    prefill_moe_latency_s_per_gparam: StepSeconds = 0.0
    # prefill_moe_layer_overhead_s (the stall of the step carrying the prompt) in proportion to the
    # size of the model's MoE layers, per MoE layer per billion routed expert parameters in the
    # layer. Added to it; 0 leaves it out.
    prefill_moe_overhead_s_per_gparam: StepSeconds = 0.0
    # Time a request spends outside the GPUs before its prompt reaches the engine's scheduler
    # and its first token reaches the client: HTTP and the serving API front-end (chat
    # template, tokenization, hand-off to the engine process), detokenization and streaming.
    # Pure latency: it adds to TTFT and end-to-end latency, never to a step. 0 leaves it out.
    frontend_latency_s: StepSeconds = 0.0
    # The front-end's CPU time per streamed token, which new requests queue behind: one event
    # loop per serving process (SGLang's TokenizerManager shares the HTTP server's process;
    # trtllm-serve post-processes there unless `num_postprocess_workers` is set) sends every
    # streamed token and takes in every new request before the engine sees it. A new request
    # waits the M/D/1 mean wait of that loop at its utilization (this times the streamed
    # tokens/s per entry replica; sim/frontend.py). Seconds per token; 0 leaves it out.
    frontend_s_per_streamed_token: StepSeconds = 0.0
    # Attention-DP context balancing (TensorRT-LLM `attention_dp_config.enable_balance`): an
    # aggregated replica with attention DP holds new prompts until every rank has one and a
    # free slot, or until this many steps have passed since the last release, so that the
    # ranks prefill together instead of idling at the MoE all-to-all while one rank prefills.
    # At load it makes prompts wait for a release that comes every `timeout_iters` steps.
    # 0: prompts are admitted at the next step boundary.
    adp_balance_timeout_steps: Annotated[int, within(0, 1_000_000, "engine steps")] = 0
    # SGLang's `--scheduler-recv-interval N` (managers/scheduler_recv_skipper.py): the scheduler
    # takes new requests off its socket only once N decode (or MTP verify) steps have run since it
    # last did, and at once after a step that carried prompt tokens or while it has nothing to run.
    # A prompt that arrives during decoding waits for that poll before it can be admitted: about
    # N/2 decode steps at steady load. Applies to aggregated replicas. 0 or 1: every step boundary.
    scheduler_recv_interval_steps: Annotated[int, within(0, 1_000_000, "engine steps")] = 0
    # Disaggregated serving: whether the client's first token arrives when a decode replica takes
    # the request in (after the KV transfer and any wait for room on the decode side), as when the
    # client streams from the decode worker (Dynamo; SGLang's PD disaggregation, whose prefill
    # server streams nothing to the client), rather than at the end of the prompt's last prefill
    # step. Moves that wait from TPOT into TTFT, as the client measures them.
    first_token_from_decode: bool = False
    # Whether a step that carries prompt tokens carries no decodes on an aggregated replica: the
    # running sequences wait for it (SGLang's scheduler: a prefill batch runs whenever prompts can
    # be admitted, apart from the decode batch, unless launched with --enable-mixed-chunk;
    # managers/scheduler.py get_next_batch_to_run). With identical output lengths it keeps the
    # clients of a closed loop in cohorts: a cohort's prompts are all prefilled before any of them
    # decodes, so they finish together and return together. False: prompt chunks ride along with
    # the decode step (TensorRT-LLM's inflight batching, vLLM's chunked prefill).
    prefill_steps_alone: bool = False
    # How an aggregated replica hands out KV memory. "reserve": a request is admitted only when
    # KV for its whole context (input + output) is free, and never evicted (TensorRT-LLM's
    # default GUARANTEED_NO_EVICT capacity scheduler). "on_demand": admitted when its prompt
    # fits, its cache grows token by token, and when the next step would not fit the newest
    # running sequence is preempted, its KV freed, and it goes back to the head of the queue
    # to be recomputed (prompt and generated tokens) when memory allows.
    kv_allocation: Literal["reserve", "on_demand"] = "reserve"
    # Probability that an MTP draft token is accepted, given the one before it was, when this
    # stack serves a model's multi-token-prediction module; None: the project's default
    # (fidelity.mlperf.MTP_ACCEPTANCE). Set where calibration fits it to measured MTP runs.
    mtp_acceptance: float | None = Field(default=None, gt=0, lt=1)
    # Standard deviation of that acceptance across requests (each request draws its own from a
    # Beta distribution that keeps the tokens per pass: perf/mtp_spread.py); None: one
    # acceptance for every request. An experiment's mtp.acceptance_sd overrides it.
    mtp_acceptance_sd: float | None = Field(default=None, ge=0, lt=0.5)
    # What prices a step: "roofline", this project's model (perf/steptime.py, with the efficiency
    # factors above), or "aiconfigurator", NVIDIA's aiconfigurator-core engine pricing each step
    # from its measured kernel tables (perf/aiconfigurator.py; needs `pip install
    # 'factory-sim[aic]'`). Memory, the scheduler and the per-request latencies above stay ours.
    step_time_backend: Literal["roofline", "aiconfigurator"] = "roofline"
    # aiconfigurator-core's version of the serving framework's kernel tables ("current",
    # "previous", "next" or one of its listed versions, e.g. "1.3.0rc23"); None: "current".
    aiconfigurator_version: str | None = None
    kv_transfer_latency_s: StepSeconds
    hbm_utilization: Efficiency  # KV share of the HBM left after weights and activations
    activation_reserve_gb: Annotated[float, within(0, 100_000, "GB per GPU; beyond any GPU's memory")]
    fitted_to: list[str] = Field(default_factory=list)

    @property
    def prefill_attention_fraction(self) -> float:
        return self.prefill_attention_efficiency or self.attention_efficiency

    def gemm_peak_fraction(self, compute_precision: str) -> float:
        """Large-GEMM efficiency at a tensor-core precision (perf.replica.compute_precision)."""
        value = getattr(self.gemm_efficiency, compute_precision, None)
        if value is None:
            raise ConfigError(
                "stack.gemm_efficiency",
                f"stack '{self.name}' gives no GEMM efficiency for {compute_precision}; add "
                f"gemm_efficiency.{compute_precision} to the stack profile",
            )
        return value


def load_stack(name_or_path: str | Path) -> SoftwareStack:
    """A built-in software stack by name, or a user's stack profile YAML by path."""
    return load("stack", name_or_path, SoftwareStack)


def list_stacks() -> list[SoftwareStack]:
    return [load_stack(n) for n in builtin_names("stack")]
