"""Token lengths of the MLPerf Inference LLM datasets, request by request.

A Server or Interactive result is gated on the 99th percentile over requests of TTFT and of
TPOT, and both percentiles are set by the spread of the lengths, not by their means: a
request's TPOT is its own average over its decode steps (LoadGen: (latency - TTFT) /
(tokens - 1)), so a short answer averages over a few steps, and when those steps also carry
another request's whole prompt its TPOT is far above the mean; the longest prompts and the
Poisson bursts set the TTFT tail. A run at the mean lengths has neither tail.

The statistics are those of the datasets' token counts; the fitted shapes are estimates
that keep each row's mean (the scored mean), so the work of the run is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LengthStats:
    """Published mean, median and maximum of one dataset's token counts (tokens)."""

    mean: float
    median: float
    max_tokens: int


@dataclass(frozen=True)
class DatasetLengths:
    input: LengthStats | None
    output: LengthStats | None


# Token-length statistics of the MLCommons dataset files (4388 / 24576 / 6396 samples), from
# the openshift-psap/performance-dashboard token-length summaries
# (https://github.com/openshift-psap/performance-dashboard/tree/main/mlperf-data/summaries,
# mean/median/max computed from them) and, for gpt-oss-120b's outputs, the MLCommons TEST09
# README (reference mean output 1278.2 tokens, std 247.0, min 518, max 3154;
# https://github.com/mlcommons/inference/blob/master/compliance/TEST09/README.md), whose
# median is not published: 1278.2 / exp(sigma^2 / 2) with sigma = sqrt(ln(1 + (247/1278.2)^2))
# = 0.191 gives 1255 (derived). Llama 3.1 405B's lengths have their median above their mean
# (10,112 > 9,429 in, 753 > 685 out): no right-skewed shape fits them, so they stay at the
# mean (None).
MLPERF_DATASET_LENGTHS = {
    "deepseek_r1": DatasetLengths(input=LengthStats(803.8, 901.5, 3140),
                                  output=LengthStats(4043.4, 2194.0, 32768)),
    "llama2_70b": DatasetLengths(input=LengthStats(222.3, 152.0, 1021),
                                 output=LengthStats(218.9, 190.0, 1016)),
    "gpt_oss_120b": DatasetLengths(input=LengthStats(5010.6, 4593.0, 15330),
                                   output=LengthStats(1278.2, 1255.0, 3154)),
    "llama3_1_405b": DatasetLengths(input=None, output=None),
}


# Output tokens per sample the submissions generated, which LoadGen scores (its tokens/s counts
# the tokens each run returned, not the reference answers' lengths): result_tokens_per_second
# over result_samples_per_second of one Offline performance log per model in
# https://github.com/mlcommons/inference_results_v6.0 (closed/<submitter>/results/<platform>/
# <benchmark>/Offline/performance/run_1/mlperf_log_detail.txt or mlperf_log_summary.txt), all
# HGX B300, TensorRT-LLM, FP4. The other rows of a model (other hardware, rounds, FP8) are
# assumed to generate the same mean: an estimate, since greedy answers differ a little with the
# engine and the number format.
MLPERF_GENERATED_OUTPUT_TOKENS = {
    # Dell XE9780L-B300-SXM-270GBx8_TRT llama2-70b-99: 108,669 / 399.32 = 272.1 (reference 218.9;
    # Cisco C880A_M8_B300_288GBx8_TRT: 115,730 / 423.839 = 273.1)
    "llama2_70b": 272.1,
    # GigaComputing G894-SD3-AAX7_B300-SXM-270GBx8_TRT llama3.1-405b: 1,947.91 / 2.98962 = 651.6
    # (reference 684.7; Cisco C880A_M8_B300_288GBx8_TRT: 1,971.11 / 3.09594 = 636.7)
    "llama3_1_405b": 651.6,
    # ASUSTeK XA_NB3I-E12_B300x8_TRT gpt-oss-120b: 110,077 / 84.1448 = 1,308.2 (reference 1,278.2)
    "gpt_oss_120b": 1308.2,
    # Dell XE9780L-B300-SXM-270GBx8_TRT deepseek-r1: 66,287.9 / 17.6909 = 3,747.0 (reference
    # 4,043.4)
    "deepseek_r1": 3747.0,
}


def generated_output_tokens(model_name: str, reference_tokens: float) -> float:
    """Mean output tokens per request an MLPerf run of this model generates; the reference
    answers' mean (the row's) where no log states it."""
    return MLPERF_GENERATED_OUTPUT_TOKENS.get(model_name, reference_tokens)


def lognormal_sigma(stats: LengthStats) -> float:
    """Log-space spread of the lognormal whose mean/median ratio is the dataset's
    (mean = median x exp(sigma^2 / 2)); 0 where the median is not below the mean."""
    if stats.median <= 0 or stats.mean <= stats.median:
        return 0.0
    return math.sqrt(2.0 * math.log(stats.mean / stats.median))


def sample_dataset_lengths(stats: LengthStats | None, mean_tokens: int, n: int,
                           rng: np.random.Generator) -> np.ndarray:
    """`n` lengths with the dataset's shape (lognormal from its mean/median, capped at its
    maximum), rescaled so that their mean is `mean_tokens`; the mean itself, fixed, where the
    dataset's shape is unknown or not right-skewed."""
    sigma = 0.0 if stats is None else lognormal_sigma(stats)
    if sigma <= 0 or n < 2:
        return np.full(n, mean_tokens, dtype=np.int64)
    cap = max(stats.max_tokens * mean_tokens / stats.mean, mean_tokens)
    draws = np.minimum(rng.lognormal(math.log(mean_tokens) - sigma**2 / 2, sigma, size=n), cap)
    draws *= mean_tokens / draws.mean()  # the cap and the sample move the mean; restore it
    return np.clip(np.rint(draws), 1, math.ceil(cap)).astype(np.int64)


def request_lengths(model_name: str, isl: int, osl: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) token counts of `n` requests of an MLPerf dataset at the row's means."""
    rng = np.random.default_rng(seed)
    known = MLPERF_DATASET_LENGTHS.get(model_name, DatasetLengths(None, None))
    return (sample_dataset_lengths(known.input, isl, n, rng),
            sample_dataset_lengths(known.output, osl, n, rng))
