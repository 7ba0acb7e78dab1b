"""The GRPO step loop: sample -> rollout -> reward -> advantages -> learn -> weight sync -> observe -> log.

The driver is the only place that knows this order (DESIGN.md "Roles and the step loop"). In async
mode the rollouts of steps t+1 .. t+k (k = max_staleness) are in flight before step t is learned, so
generation overlaps the update; the rollout of step t+j runs on weights up to j versions old (at most
k) and the learner corrects with importance weights from the behaviour logprobs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from actors.learner_group import LearnerGroup
from actors.monitoring import RunMetrics
from actors.placement import Placement, rollout_group_options
from actors.reward import RewardPool
from actors.rollout import RolloutGroup
from actors.sampler import SamplerActor
from actors.scheduling import resources_now, wait_placed
from learner.config.run import RunConfig
from learner.driver.none_guard import NoneRewardGuard
from learner.driver.run_dir import progress
from learner.driver.step_metrics import MetricsWriter, batch_metrics, truncate_metrics
from learner.eval.core import evaluate
from learner.grpo.advantages import GroupAdvantages, group_advantages
from learner.grpo.train_step import NonFiniteTrainingError, samples_from_completions
from learner.policy.checkpoint import latest_checkpoint
from learner.reporting.alerts import CollapseDetector
from reward_service.debug_log import RewardDebugLog, truncate_debug_log

log = logging.getLogger("pddl_grpo.loop")


def score_as_generated(rollout: Any, score: Callable[[list, list], list], samples: list[dict]):
    """Score each chunk of a pending rollout (actors.rollout.PendingRollout.stream) as it arrives.

    Returns (completions, scores, wait_s, score_s): completions and their scores in prompt order whatever
    order the chunks finished in, each chunk scored exactly once by `score(completions, samples)`;
    wait_s is the time spent waiting for chunks, score_s the time spent in `score`.
    """
    parts: dict[int, tuple[list, list]] = {}
    waited = scored = 0.0
    chunks = rollout.stream()
    while True:
        t = time.monotonic()
        item = next(chunks, None)
        waited += time.monotonic() - t
        if item is None:
            break
        start, completions = item
        if start in parts:
            raise RuntimeError(f"rollout chunk at prompt {start} arrived twice")
        t = time.monotonic()
        parts[start] = (completions, score(completions, samples))
        scored += time.monotonic() - t
    order = sorted(parts)
    return [c for k in order for c in parts[k][0]], [s for k in order for s in parts[k][1]], waited, scored


@dataclass(frozen=True)
class PlannedStep:
    """A step's batch as the sampler served it, with its rollout submitted (possibly steps ahead, async)."""

    step: int
    batch: list[dict]  # the B samples (sampler.stream records: sample_id, domain, bucket, prompt, meta)
    served: dict[str, float]  # the sampler's metrics of this batch (counts, curriculum weights)
    rollout: Any  # actors.rollout.PendingRollout


@dataclass(frozen=True)
class GroupedStep:
    """Every group scored in a step (the batch's, then the refill rounds'), with its advantages."""

    samples: list[dict]  # one per completion (each sample G times)
    completions: list  # reward_service.result.Completion
    scores: list  # reward_service.scoring.Score
    first: GroupAdvantages  # of the sampled batch alone (frac_zero_std_groups)
    adv: GroupAdvantages  # of all groups, computed once (scale_rewards="batch" sees the update's batch)
    keep: list[bool]  # completions the learner trains on (valid, and in a group with signal when filtering)
    refill: dict[str, int]  # refill/rounds, refill/groups, refill/groups_with_signal


@dataclass
class Roles:
    """The four roles the loop drives. StepLoop builds the Ray ones (`build_roles`); a test may pass fakes.

    sampler: serve(step) -> (batch, metrics), refill(step, round, domains), observe(step, outcomes),
             metrics(), state_dict(), load_state_dict(state)            (SamplerClient)
    learner: train_step(samples) -> metrics, adapter_state_handle() -> (version, state), load(path, run_dir),
             save(run_dir, step, extra, limit), shutdown()              (actors.learner_group.LearnerGroup)
    rollout: submit(...) -> PendingRollout, generate(...), update_weights(state, version), timings(),
             sleep(), wake_up(), shutdown(), actors                     (actors.rollout.RolloutGroup)
    pool:    score(completions, samples) -> scores, shutdown()          (actors.reward.RewardPool)
    """

    sampler: Any
    learner: Any
    rollout: Any
    pool: Any


class SamplerClient:
    """The sampler actor as plain calls, so the loop holds no Ray handle of its own."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def serve(self, step: int) -> tuple[list[dict], dict[str, float]]:
        return ray.get(self.actor.serve.remote(step))

    def refill(self, step: int, round_: int, domains: list[str]) -> list[dict]:
        return ray.get(self.actor.refill_batch.remote(step, round_, domains))

    def observe(self, step: int, outcomes: list[dict]) -> None:
        self.actor.observe.remote(step, outcomes)  # not awaited: the actor runs it before the next serve

    def metrics(self) -> dict[str, float]:
        return ray.get(self.actor.metrics.remote())

    def state_dict(self) -> dict[str, Any]:
        return ray.get(self.actor.state_dict.remote())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ray.get(self.actor.load_state_dict.remote(state))


def build_roles(cfg: RunConfig, model_path: str, data_root: Path, placement: Placement | None) -> Roles:
    """The run's Ray actors: sampler, learner (group), rollout group and reward pool, placed and started."""
    learner_cfg = cfg.learner.model_copy(update={"base_model": model_path})
    sampler = SamplerActor.options(name="sampler", num_cpus=cfg.cluster.sampler_num_cpus).remote(cfg.sampler)
    learner = LearnerGroup.from_run_config(cfg, learner_cfg, placement)  # data parallel: N ranks
    if placement is not None and placement.plan.mode == "colocated":
        # vLLM profiles the GPU's free memory while it starts and fails if another process frees memory
        # meanwhile (a learner growing meanwhile shrinks its KV cache): the learner loads first, alone
        learner.wait_ready()
        log.info("colocated: learner loaded, starting the rollout engine on its GPU")
    rollout = RolloutGroup(model_path, cfg.rollout, {"lora": learner_cfg.lora_spec},  # the learner's adapter shape
                           **rollout_group_options(cfg, placement))
    pool = RewardPool(cfg.reward, cfg.sampler.pddl_root or str(data_root),  # meta paths' root
                      start_timeout_s=cfg.cluster.placement_timeout_s)
    # An actor Ray cannot place would make the first ray.get wait forever: fail with what is missing
    wait_placed(cfg.cluster.placement_timeout_s, lambda: _resource_problems(cfg))
    return Roles(SamplerClient(sampler), learner, rollout, pool)


class StepLoop:
    """Drives `max_steps` learner optimizer steps over the four roles of one run."""

    def __init__(self, cfg: RunConfig, run_dir: Path, model_path: str = "", data_root: Path | None = None,
                 placement: Placement | None = None, *, roles: Roles | None = None) -> None:
        """Builds the Ray roles (`build_roles`) unless `roles` are given (a test's in-process fakes)."""
        self.cfg, self.run_dir = cfg, run_dir
        self.colocated = placement is not None and placement.plan.mode == "colocated"  # engines sleep to learn
        roles = roles or build_roles(cfg, model_path, Path(data_root or "."), placement)
        self.sampler, self.learner, self.rollout, self.pool = roles.sampler, roles.learner, roles.rollout, roles.pool
        self.none_guard = NoneRewardGuard(cfg.reward.max_none_steps)
        self.metrics = MetricsWriter(run_dir, _wandb_run(cfg, run_dir))
        self.debug = RewardDebugLog(run_dir / "reward_debug.log", cfg.reward.debug_plan_chars)
        self.live = RunMetrics(run_dir.name)
        self.collapse = CollapseDetector(cfg.eval.collapse_margin)
        self.eval_samples: list[dict] | None = None
        self._ahead: dict[int, PlannedStep] = {}  # async: the next max_staleness steps, submitted ahead
        self.version = 0
        self.start_step = 0
        self._last_end = time.monotonic()
        self._resume()
        self._push_weights()

    # -- setup -------------------------------------------------------------------------------------
    def _resume(self) -> None:
        """Restore learner, sampler and guards from a checkpoint; the logs lose what came after it.

        `resume_from_checkpoint: auto` takes the newest checkpoint that loads: one that does not (a torn
        or corrupt file) is warned about and the previous one is used (learner.policy.checkpoint.load_checkpoint).
        A named checkpoint directory is loaded as named, or the run stops.
        """
        target = self.cfg.resume_from_checkpoint
        if not target:
            return
        newest = latest_checkpoint(self.run_dir) if target == "auto" else Path(target)
        extra = self.learner.load(target if target == "auto" else str(newest), str(self.run_dir)) if newest else None
        if extra is None:
            log.info("resume_from_checkpoint=auto: no checkpoint yet, starting at step 0")
            return
        loaded = Path(extra.get("checkpoint_path", newest))
        if loaded != newest:  # the learner's log has why (learner.policy.checkpoint.load_checkpoint)
            log.warning("checkpoint %s does not load; falling back to the previous one, %s", newest, loaded)
        self.sampler.load_state_dict(extra["sampler"])
        if "collapse" in extra:
            self.collapse.load_state_dict(extra["collapse"])
        if "none_guard" in extra:
            self.none_guard.load_state_dict(extra["none_guard"])
        self.start_step = int(extra["step"]) + 1
        # the steps after the checkpoint run again: their records go, so none is written twice
        truncate_metrics(self.run_dir / "metrics.jsonl", self.start_step)
        self.debug.close()
        truncate_debug_log(self.debug.path, self.start_step)
        log.info("resumed from %s at step %d", loaded, self.start_step)

    def _push_weights(self) -> float:
        t = time.monotonic()
        # the driver reads the version only; the tensors go from the object store to the rollout actors
        # without being copied through this process
        version, state = self.learner.adapter_state_handle()
        self.rollout.update_weights(state, version)
        self.version = version
        return time.monotonic() - t

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.cfg
        steps = range(self.start_step, cfg.max_steps)
        bar = progress(steps, total=len(steps), desc="grpo", enabled=cfg.logging.progress_bar)
        self._last_end = time.monotonic()
        self._rollout_timings = self.rollout.timings()
        for step in bar:
            record = self.step(step)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(reward=f"{record['reward/mean']:.3f}", s_per_step=f"{record['time/wall']:.1f}")
            if cfg.eval.eval_steps and self.eval_samples and (step + 1) % cfg.eval.eval_steps == 0:
                self._in_training_eval(step)
            if (step + 1) % cfg.save_steps == 0 or step + 1 == cfg.max_steps:
                self.save(step)

    def step(self, step: int) -> dict[str, Any]:
        """One learner step, in order: sample -> rollout + score -> (plan ahead) -> group -> learn -> push ->
        observe -> record. Returns the metrics record it wrote."""
        times: dict[str, float] = {}
        planned = self._sample(step, times)
        completions, scores = self._rollout_and_score(planned, times)
        self._plan_ahead(step)  # async: the next steps' rollouts run on the current weights while this one learns
        grouped = self._group(planned, completions, scores, times)
        self.debug.write_step(step, grouped.scores)  # before the guard: the step that stops a run is logged too
        self.none_guard.update(step, grouped.samples, grouped.scores)  # a domain always None stops the run
        learned_from = self.version  # the policy version this update starts from
        learn_metrics = self._learn(step, grouped, times)
        times["weight_sync"] = self._push_weights()
        self._observe(step, grouped)
        return self._record(planned, grouped, learn_metrics, learned_from, times)

    def _sample(self, step: int, times: dict[str, float]) -> PlannedStep:
        """The step's batch, its rollout submitted: planned ahead (async) or served now."""
        t = time.monotonic()
        planned = self._ahead.pop(step, None) or self._plan(step)
        times["sample"] = time.monotonic() - t
        return planned

    def _plan(self, step: int) -> PlannedStep:
        batch, served = self.sampler.serve(step)
        return PlannedStep(step, batch, served, self._submit(batch))

    def _plan_ahead(self, step: int) -> None:
        ahead = self.cfg.max_staleness if self.cfg.mode == "async" else 0
        for later in range(step + 1, min(step + ahead, self.cfg.max_steps - 1) + 1):
            if later not in self._ahead:
                self._ahead[later] = self._plan(later)

    def _submit(self, batch: list[dict]):
        """Generation on the weights the learner holds now (exact: a rollout that starts after the next push
        still runs on this version; RolloutActor keeps the pushes apart). With rollout.bucket_temperatures
        each prompt is sampled at its bucket's temperature; without, no per-prompt list is passed at all."""
        prompts = [s["prompt"] for s in batch]
        ids = [s["sample_id"] for s in batch]
        g = self.cfg.rollout.num_generations
        if self.cfg.rollout.bucket_temperatures is None:
            return self.rollout.submit(prompts, ids, g, policy_version=self.version)
        return self.rollout.submit(prompts, ids, g, policy_version=self.version,
                                   temperature=self._bucket_temperatures(batch))

    def _bucket_temperatures(self, samples: list[dict]) -> list[float]:
        """rollout.bucket_temperatures of each sample's bucket (the sampler gives every sample one)."""
        by_bucket = self.cfg.rollout.bucket_temperatures or {}
        out = []
        for s in samples:
            if s.get("bucket") not in by_bucket:
                raise ValueError(f"sample {s.get('sample_id')} has bucket {s.get('bucket')!r}; "
                                 f"rollout.bucket_temperatures knows {sorted(by_bucket)}")
            out.append(by_bucket[s["bucket"]])
        return out

    def _rollout_and_score(self, planned: PlannedStep, times: dict[str, float]) -> tuple[list, list]:
        """The step's completions and their scores, each rollout chunk scored as it arrives (streaming): the
        reward pool works on one actor's chunk while the other actors still generate. Completions and scores
        come back in prompt order, each scored exactly once; time/rollout is the driver's wait for chunks,
        time/reward its time in the pool."""
        samples = [s for s in planned.batch for _ in range(self.cfg.rollout.num_generations)]
        completions, scores, times["rollout"], times["reward"] = score_as_generated(
            planned.rollout, self.pool.score, samples)
        return completions, scores

    def _group(self, planned: PlannedStep, completions: list, scores: list, times: dict[str, float]) -> GroupedStep:
        """Advantages of the step's scored groups, refilling filtered groups when configured: a refill round
        asks the sampler for new problems of the domains whose groups had no signal, generates with the
        current weights and scores them. Advantages are computed once over all groups scored."""
        cfg, g = self.cfg, self.cfg.rollout.num_generations
        batch = planned.batch
        samples = [s for s in batch for _ in range(g)]
        first = group_advantages([s.reward for s in scores], g, cfg.learner.scale_rewards,
                                 cfg.learner.advantage_epsilon)
        refill = {"refill/rounds": 0, "refill/groups": 0, "refill/groups_with_signal": 0}
        missing = [s["domain"] for s, ok in zip(batch, first.group_has_signal, strict=True) if not ok]
        for round_ in range(cfg.max_refill_rounds if cfg.filter_zero_std_groups else 0):
            if not missing:
                break
            t = time.monotonic()
            extra = self.sampler.refill(planned.step, round_, missing)
            extra_completions = self._submit(extra).result()
            times["refill"] = times.get("refill", 0.0) + time.monotonic() - t
            extra_samples = [s for s in extra for _ in range(g)]
            extra_scores = self.pool.score(extra_completions, extra_samples)
            signal = group_advantages([s.reward for s in extra_scores], g, cfg.learner.scale_rewards,
                                      cfg.learner.advantage_epsilon).group_has_signal
            samples, scores = samples + extra_samples, scores + extra_scores
            completions = completions + extra_completions
            refill["refill/rounds"] += 1
            refill["refill/groups"] += len(extra)
            refill["refill/groups_with_signal"] += sum(signal)
            missing = [s["domain"] for s, ok in zip(extra, signal, strict=True) if not ok]
        adv = group_advantages([s.reward for s in scores], g, cfg.learner.scale_rewards, cfg.learner.advantage_epsilon)
        keep = list(adv.valid)
        if cfg.filter_zero_std_groups:
            keep = [k and adv.group_has_signal[i // g] for i, k in enumerate(keep)]
        return GroupedStep(samples, completions, scores, first, adv, keep, refill)

    def _learn(self, step: int, grouped: GroupedStep, times: dict[str, float]) -> dict[str, float]:
        """The learner's update on the kept completions (the engine asleep meanwhile when colocated)."""
        train = samples_from_completions(grouped.completions, grouped.adv.advantages, grouped.keep,
                                         group_size=self.cfg.rollout.num_generations)
        if self.colocated:  # the engine frees the shared GPU while the learner trains
            times["sleep"] = _timed(self.rollout.sleep)
        t = time.monotonic()
        try:
            learn_metrics = self.learner.train_step(train) if train else {"skipped": 1.0}
        except NonFiniteTrainingError as exc:  # raised in the learner actor; this run cannot learn any more
            raise NonFiniteTrainingError(f"step {step}: {exc.reason}; the checkpoints saved before it hold finite "
                                         "weights (lower learner.learning_rate or check the batch)") from None
        times["learn"] = time.monotonic() - t
        if self.colocated:
            times["wake"] = _timed(self.rollout.wake_up)
        return learn_metrics

    def _observe(self, step: int, grouped: GroupedStep) -> None:
        """The step's outcomes to the sampler (curriculum statistics; reward_debug.log is written in `step`)."""
        outcomes = [{"sample_id": s["sample_id"], "domain": s["domain"], "bucket": s.get("bucket"),
                     "reward": sc.reward, "label": sc.label.value}
                    for s, sc in zip(grouped.samples, grouped.scores, strict=True)]
        self.sampler.observe(step, outcomes)

    def _record(self, planned: PlannedStep, grouped: GroupedStep, learn_metrics: dict[str, float],
                learned_from: int, times: dict[str, float]) -> dict[str, Any]:
        """The step's metrics record (metrics.jsonl, the dashboard gauges, samples/ every logging_steps)."""
        cfg, g, step, batch = self.cfg, self.cfg.rollout.num_generations, planned.step, planned.batch
        samples, completions, scores, keep = grouped.samples, grouped.completions, grouped.scores, grouped.keep
        record: dict[str, Any] = {"step": step}
        record.update(batch_metrics(samples, completions, [s.reward for s in scores],
                                    [sc.label.value for sc in scores], g))
        record["frac_zero_std_groups"] = grouped.first.frac_zero_std_groups  # of the sampled batch, before refill
        record["groups_trained"] = sum(any(keep[i: i + g]) for i in range(0, len(keep), g))
        if cfg.max_refill_rounds:
            record.update(grouped.refill)
        record.update({k if "/" in k else f"learner/{k}": v for k, v in learn_metrics.items()})
        record.update(self.sampler.metrics())
        record.update(planned.served or {})  # weights and counts of this step's batch, not of one served after it
        record["batch/sample_ids"] = [s["sample_id"] for s in batch]
        if cfg.max_refill_rounds:
            record["batch/refill_sample_ids"] = [s["sample_id"] for s in samples[len(batch) * g:: g]]
        if cfg.rollout.bucket_temperatures is not None:  # refills included: each completion's temperature
            record["rollout/temperature_mean"] = sum(self._bucket_temperatures(samples)) / len(samples)
        record["policy_version"] = self.version
        record["policy_version_lag"] = learned_from - min(c.policy_version for c in completions)
        for key, value in times.items():
            record[f"time/{key}"] = value
        record["time/step"] = sum(times.values())
        now = time.monotonic()
        record["time/wall"] = now - self._last_end  # wall clock since the previous step ended (async overlaps)
        self._last_end = now
        record.update(self._busy_metrics(record["time/wall"], times))
        record.setdefault("learner/kl", None)  # null: not computed (beta = 0 runs no reference pass)
        self.metrics.write(record)
        self.live.update(record, [sc.latency_ms for sc in scores])
        if step % cfg.logging.logging_steps == 0:
            self._write_samples(step, samples, completions, scores)
        return record

    def _busy_metrics(self, wall: float, times: dict[str, float]) -> dict[str, float]:
        """Where each role spent the step, measured where it runs: the rollout actors' own busy seconds since
        the previous step (generate + weight loads; in async mode this includes the next step's generation,
        which overlaps this step), tokens per busy second, and busy/idle ratios of rollout and learner over
        the step's wall time. time/rollout is the driver's wait for the completions, not generation time."""
        now = self.rollout.timings()
        last, self._rollout_timings = self._rollout_timings, now
        busy = (now["generate_s"] - last["generate_s"]) + (now["load_weights_s"] - last["load_weights_s"])
        gen = now["generate_s"] - last["generate_s"]
        tokens = now["tokens"] - last["tokens"]
        actors = max(1, len(self.rollout.actors))
        out = {
            "rollout/busy_s": busy,
            "rollout/load_weights_s": now["load_weights_s"] - last["load_weights_s"],
            "rollout/tokens_per_second": tokens / gen if gen > 0 else 0.0,
        }
        if wall > 0:
            out["rollout/idle_ratio"] = max(0.0, 1.0 - busy / (wall * actors))
            out["learner/idle_ratio"] = max(0.0, 1.0 - times.get("learn", 0.0) / wall)
        return out

    # -- outputs -----------------------------------------------------------------------------------
    def _write_samples(self, step: int, samples: list[dict], completions: list, scores: list) -> None:
        path = self.run_dir / "samples" / f"step-{step:06d}.jsonl"
        path.parent.mkdir(exist_ok=True)
        with path.open("w") as fh:
            for s, c, sc in zip(samples, completions, scores, strict=True):
                fh.write(json.dumps({"sample_id": s["sample_id"], "domain": s["domain"], "prompt": s["prompt"],
                                     "completion": c.text, **sc.to_dict()}) + "\n")

    def save(self, step: int) -> None:
        state = self.sampler.state_dict()
        extra = {"sampler": state, "step": step, "collapse": self.collapse.state_dict(),
                 "none_guard": self.none_guard.state_dict()}
        self.learner.save(str(self.run_dir), step, extra, self.cfg.save_total_limit)
        log.info("checkpoint saved at step %d", step)

    def write_json(self, name: str, payload: dict) -> None:
        (self.run_dir / name).write_text(json.dumps(payload, indent=2))

    def evaluate(self, samples: list[dict]) -> dict[str, Any]:
        """Greedy held-out success with the weights the rollout actors hold now."""
        def generate(prompts, ids, k):
            return self.rollout.generate(prompts, ids, k, temperature=0.0)

        return evaluate(generate, self.pool.score, samples, k=1)

    def _in_training_eval(self, step: int) -> None:
        report = self.evaluate(self.eval_samples or [])
        report["step"] = step
        folder = self.run_dir / "eval"
        folder.mkdir(exist_ok=True)
        (folder / f"step-{step}.json").write_text(json.dumps(report, indent=2))
        success = {d: r["success_rate"] for d, r in report["domains"].items()}
        log.info("step %d held-out greedy success: %s", step, {d: round(v, 3) for d, v in success.items()})
        for line in self.collapse.update_report(step, report):  # success with its n: judged beyond the interval
            log.warning("%s", line)
            if self.metrics._wandb is not None:
                import wandb

                wandb.alert(title="pddl-grpo domain collapse", text=line)

    def shutdown(self) -> None:
        self.debug.close()
        self.pool.shutdown()
        self.rollout.shutdown()
        self.learner.shutdown()  # leaves the data-parallel process group before the ranks die


def _timed(call) -> float:
    t = time.monotonic()
    call()
    return time.monotonic() - t


def _resource_problems(cfg: RunConfig) -> list[str]:
    """What the run asks of the cluster that it does not have (learner.recipe_check)."""
    from learner.recipe_check import check_resources

    return check_resources(cfg, resources_now()[0])


def _wandb_run(cfg: RunConfig, run_dir: Path):
    if not cfg.logging.wandb:
        return None
    import os

    import wandb

    mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return wandb.init(project=cfg.logging.wandb_project, name=run_dir.name, dir=str(run_dir), mode=mode,
                      config=cfg.model_dump(mode="json"))
