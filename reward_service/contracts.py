"""The contracts that cross roles (DESIGN.md "Data contracts"), in one place every role imports.

    Sample      the sampler's output: a record plus its id, domain, difficulty and bucket (a JSON-ready dict,
                as Ray, samples/step-N.jsonl and the reward pool carry it)
    Completion  a rollout output: the text, its token ids and behaviour logprobs, the policy version
    Score       a reward output: the reward (None when the validator failed), the label and what it rests on
    LoraSpec    the adapter shape the learner trains and both rollout engines build and load

They live in `reward_service` because it is the one package every role already imports (the sampler for the
PDDL model, the rollout and learner for scoring); this module imports nothing of the project but the labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from reward_service.result import Label

Bucket = Literal["easy", "medium", "hard"]


class Sample(TypedDict):
    """One prompt of a batch (DESIGN.md "Sample"): the record's fields plus what the sampler adds."""

    prompt: str
    meta: dict[str, Any]  # problem_file, domain_file (relative to the PDDL root), scenario, reference_plan_length
    sample_id: str  # stable: "<domain>:<line index>"
    domain: str
    difficulty_params: dict[str, Any]
    difficulty_score: float
    bucket: Bucket
    response: NotRequired[str]  # the gold plan (SFT imitates it; GRPO never reads it)
    class_label: NotRequired[str]  # the gold response's label


@dataclass(frozen=True)
class Completion:
    """One rollout output (DESIGN.md "Completion"): what the reward pool scores and the learner trains on."""

    sample_id: str
    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()  # per generated token, under the behaviour policy
    finish_reason: str = "stop"  # "stop" | "length"
    policy_version: int = 0
    prompt_token_ids: tuple[int, ...] = ()
    extras: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Score:
    """The reward of one completion (DESIGN.md "Score"); frozen and picklable, it crosses Ray."""

    reward: float | None  # in [-1, 1]; None when the validator failed or timed out
    label: Label
    plan: str = ""  # the extracted plan, one normalised action per line
    plan_length: int = 0
    failed_step: int | None = None  # as the seed reads VAL's text (ValidationResult.failed_step)
    violation_state_index: int | None = None  # safety: the state that broke the constraint (0 = initial)
    goals_satisfied: int = 0
    goals_total: int = 0
    violated_constraint: str | None = None
    validator: str = ""  # val | native; "extract" when the extractor decided (size cap, no action, broken line)
    latency_ms: float = 0.0
    sample_id: str = ""
    domain: str = ""
    reference_length: int | None = None  # gold length p was computed against (progress_denominator reference_length)
    dropped_lines: int = 0  # prose lines before the plan, as extract.Extraction reports
    trailing_text: str = ""  # text after the plan (truncated)
    error: str | None = None  # why reward is None, or why the extractor decided the label
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the label as its string value."""
        out = asdict(self)
        out["label"] = self.label.value
        return out


@dataclass(frozen=True)
class LoraSpec:
    """The LoRA adapter's shape: the learner's fields (LearnerConfig.lora_spec) and both engines' default.

    The update is scaled by alpha / rank; `target_modules` names modules or is "all-linear" (every linear layer
    but the head). One spec travels from the config to the learner and to every rollout engine, so the adapter
    the learner pushes always fits the one the engines built.
    """

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | Literal["all-linear"] = "all-linear"

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"LoraSpec needs rank >= 1, alpha > 0, 0 <= dropout < 1; got {self}")
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if not self.target_modules:
            raise ValueError("LoraSpec.target_modules must name at least one module, or be 'all-linear'")

    def peft_target_modules(self) -> list[str] | str:
        """`target_modules` as PEFT's LoraConfig takes it."""
        return self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
