"""pddl-grpo's reward as a TRL GRPOTrainer reward function: `(prompts, completions, **kwargs) -> list[float | None]`.

    from reward_service import trl_reward            # a function; data root from $PDDL_GRPO_DATA_ROOT
    trainer = GRPOTrainer(model=..., reward_funcs=[trl_reward], train_dataset=ds, ...)

    from reward_service.trl import make_trl_reward
    reward = make_trl_reward("data", RewardConfig(validator="native"), debug_log="runs/x/reward_debug.log")

The dataset needs a `meta` column (DESIGN.md record: `problem_file`, `domain_file` relative to the data root);
optional `sample_id` and `domain` columns name the groups in reward_debug.log. Completions may be strings or
chat message lists (conversational datasets). None (validator failed or timed out) is what TRL expects for
"no reward": it becomes NaN and is left out of the group's statistics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reward_service.config import RewardConfig
from reward_service.contracts import Completion

ENV_DATA_ROOT = "PDDL_GRPO_DATA_ROOT"


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The text of a TRL completion: a string, or the assistant contents of a message list."""
    if isinstance(completion, str):
        return completion
    messages = list(completion)
    assistant = [m for m in messages if m.get("role", "assistant") == "assistant"]
    parts = []
    for message in assistant or messages:
        content = message.get("content", "")
        if isinstance(content, list):  # multimodal-style content: keep the text parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        parts.append(str(content))
    return "\n".join(parts)


def _meta(value: Any, index: int) -> Mapping[str, Any]:
    if isinstance(value, str):  # some datasets keep meta as a JSON string column
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"meta of completion {index} must be an object with problem_file/domain_file, got {value!r}")
    return value


class TrlReward:
    """A picklable, stateful reward function for TRL; `last_scores` keeps the latest batch's Scores."""

    def __init__(
        self,
        data_root: str | Path,
        config: RewardConfig | None = None,
        debug_log: str | Path | None = None,
        name: str = "pddl_reward",
    ) -> None:
        from reward_service.scoring import RewardScorer  # lazy: keeps `import reward_service` light

        self.config = config or RewardConfig()
        self.scorer = RewardScorer(self.config, data_root)
        self.__name__ = name  # TRL's column name for this reward
        self.last_scores: list = []
        self._debug = None
        if debug_log is not None:
            from reward_service.debug_log import RewardDebugLog

            self._debug = RewardDebugLog(debug_log, self.config.debug_plan_chars)

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        if "meta" not in kwargs:
            raise ValueError("the dataset has no `meta` column: pddl-grpo's reward needs meta.problem_file/domain_file")
        metas = [_meta(m, i) for i, m in enumerate(kwargs["meta"])]
        if len(metas) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(metas)} meta entries")
        ids = kwargs.get("sample_id") or [str(m["problem_file"]) for m in metas]  # one prompt = one group
        domains = kwargs.get("domain") or [str(m.get("scenario", "")) for m in metas]
        samples: dict[str, dict[str, Any]] = {}
        for sid, dom, meta in zip(ids, domains, metas, strict=True):
            sample = samples.setdefault(str(sid), {"sample_id": str(sid), "domain": str(dom), "meta": meta})
            if sample["meta"] != meta:  # scores are looked up by sample_id: one id must mean one problem
                raise ValueError(f"sample_id {sid!r} has two different meta: {sample['meta']!r} and {meta!r}")
        batch = [Completion(str(sid), completion_text(c)) for sid, c in zip(ids, completions, strict=True)]
        scores = self.scorer.score(batch, list(samples.values()))
        self.last_scores = scores
        self._report(scores, kwargs)
        return [s.reward for s in scores]

    def _report(self, scores: list, kwargs: dict[str, Any]) -> None:
        state = kwargs.get("trainer_state")
        step = int(getattr(state, "global_step", 0) or 0)
        if self._debug is not None:
            self._debug.write_step(step, scores)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and scores:
            log_metric("reward/none_fraction", sum(s.reward is None for s in scores) / len(scores))
            log_metric("reward/success_fraction", sum(s.label.value == "success_plans" for s in scores) / len(scores))


def make_trl_reward(
    data_root: str | Path | None = None, config: RewardConfig | None = None, debug_log: str | Path | None = None
) -> TrlReward:
    """A TRL reward function over `data_root` (default: $PDDL_GRPO_DATA_ROOT)."""
    root = data_root if data_root is not None else os.environ.get(ENV_DATA_ROOT)
    if not root:
        raise ValueError(f"no data root: pass data_root or set ${ENV_DATA_ROOT}")
    return TrlReward(root, config, debug_log)


_default: TrlReward | None = None


def trl_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
    """The default TRL reward function: data root from $PDDL_GRPO_DATA_ROOT, RewardConfig defaults."""
    global _default
    root = os.environ.get(ENV_DATA_ROOT)
    if _default is None or (root and Path(root) != _default.scorer.data_root):
        _default = make_trl_reward(root)
    return _default(prompts, completions, **kwargs)
