"""Choosing and adjusting software-stack profiles (the schema is config/stack.py).

A measured result names its framework, GPU and date; the stack it ran is the newest
profile of that framework and GPU generation dated no later than the result.
"""

from __future__ import annotations

from factory_sim.catalog import builtin_names, parse
from factory_sim.config.stack import SoftwareStack, load_stack

# Names measured data uses for the serving frameworks of the built-in profiles.
FRAMEWORK_ALIASES = {"trtllm": "tensorrt-llm", "tensorrt_llm": "tensorrt-llm", "tensorrt-llm": "tensorrt-llm",
                     "trt-llm": "tensorrt-llm", "sglang": "sglang", "vllm": "vllm"}


def stack_generation(hardware_generation: str) -> str:
    """The stack family of a hardware generation: Blackwell Ultra runs Blackwell's kernels."""
    return "blackwell" if hardware_generation.startswith("blackwell") else hardware_generation


def select_stack(hardware, framework: str | None = None, date: str | None = None) -> tuple[SoftwareStack, str]:
    """The built-in stack for a GPU generation, serving framework and result date, and a note
    saying why when it is not an exact match ("" otherwise).

    Among the profiles of that generation and framework, the newest one dated no later than
    `date` ("YYYY-MM[-DD]") is the software a result of that date ran; without a date the
    newest. A framework with no profile for the generation falls back to the hardware's
    default stack, and the note says so.
    """
    generation = stack_generation(hardware.generation)
    wanted = FRAMEWORK_ALIASES.get(str(framework).lower(), str(framework).lower()) if framework else None
    note = ""
    if wanted is None:
        wanted = load_stack(hardware.default_stack).framework
    matches = [s for s in map(load_stack, builtin_names("stack"))
               if s.generation == generation and s.framework == wanted]
    if not matches:
        default = load_stack(hardware.default_stack)
        return default, f"no {wanted} profile for {generation}: used {default.name}"
    matches.sort(key=lambda s: s.date)
    if date:
        month = str(date)[:7]
        earlier = [s for s in matches if s.date <= month]
        if earlier:
            return earlier[-1], note
        return matches[0], f"no {wanted} {generation} profile as old as {month}: used {matches[0].name}"
    return matches[-1], note


def override_stack(stack: SoftwareStack, overrides: dict) -> SoftwareStack:
    """The stack with some fields replaced, validated like a stack file."""
    return parse(SoftwareStack, {**stack.model_dump(), **overrides})


def stack_for_sampling(stack: SoftwareStack, sampling: str) -> SoftwareStack:
    """The stack as a workload that decodes greedily or samples runs it: a sampling workload pays
    the stack's stochastic_sampling_step_s on every step, folded into step_overhead_s (and
    cleared, so that it is not paid twice)."""
    if sampling != "stochastic" or not stack.stochastic_sampling_step_s:
        return stack
    return stack.model_copy(update={"step_overhead_s": stack.step_overhead_s + stack.stochastic_sampling_step_s,
                                    "stochastic_sampling_step_s": 0.0})
