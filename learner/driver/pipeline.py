"""Run setup and teardown around the step loop: run dir, data, model, Ray, the four roles, evaluation.

Called by `python -m learner.main`; `learner.driver.loop.StepLoop` is the step loop itself.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from learner.config.run import RunConfig, write_config
from learner.driver.bootstrap import ensure_data, ensure_model
from learner.driver.run_dir import create_run_dir, setup_logging
from learner.eval.core import format_table, load_test_samples

log = logging.getLogger("pddl_grpo.pipeline")


def smoke_config(cfg: RunConfig) -> RunConfig:
    """The smallest settings of a config: 2 GRPO steps (2 SFT steps when it has SFT), a checkpoint, exit."""
    update: dict[str, Any] = {"max_steps": 2, "save_steps": 2}
    data = cfg.model_dump()
    data.update(update)
    data["sampler"]["max_steps"] = 2
    data["rollout"]["num_generations"] = min(cfg.rollout.num_generations, 2)
    data["rollout"]["max_new_tokens"] = min(cfg.rollout.max_new_tokens, 32)
    data["data"]["per_domain"] = min(cfg.data.per_domain, 20)
    if cfg.sft.enabled:
        data["sft"]["steps"], data["sft"]["minutes"] = 2, None
    data["eval"]["before_after"] = False
    data["eval"]["eval_steps"] = None
    return RunConfig.model_validate(data)


def preflight_config(cfg: RunConfig) -> RunConfig:
    """Check every record and PDDL file at start (sampler.preflight); the run then uses the domains found.

    Every reader after this (SFT, prompt lengths, evaluation) gets the same domain list, so a
    combined.jsonl beside the domain files is never read as a domain. With on_bad_record: error the
    sampler actor skips its own PDDL parse: every file was just parsed here.
    """
    from sampler.preflight import preflight

    report = preflight(cfg.sampler, cfg.reward.validator)
    update: dict[str, Any] = {"domains": list(report.domains)}
    if cfg.sampler.on_bad_record == "error":
        update["check_pddl"] = "off"
    # validator: auto: each task's validator, decided once here, goes to the reward workers with their config
    reward = cfg.reward.model_copy(update={"task_validators": report.task_validators})
    return cfg.model_copy(update={"sampler": cfg.sampler.model_copy(update=update), "reward": reward})


def _init_ray(cfg: RunConfig) -> bool:
    """Join `cluster.address` or $RAY_ADDRESS, else start a local Ray; returns True when the driver started it."""
    import ray

    if ray.is_initialized():
        return False
    address = cfg.cluster.address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}}
    if address and address != "local":
        ray.init(address=address, runtime_env=env, log_to_driver=True)
        return False
    # address="local" always starts a new local Ray, never joins one another process left running
    ray.init(
        address="local",
        num_cpus=cfg.cluster.num_cpus,
        include_dashboard=cfg.cluster.include_dashboard,
        dashboard_host=cfg.cluster.dashboard_host,
        runtime_env=env,
        log_to_driver=True,
    )
    return True


def _check_cluster(cfg: RunConfig, local: bool) -> None:
    """What the run asks of Ray against what the cluster has (learner.recipe_check.check_resources).

    A local Ray cannot grow, so a shortfall stops the run here with what is missing (Ray would keep the
    actor pending and the run would wait forever); a joined cluster may add nodes (autoscaler), so it is a
    warning and the actors' start deadline (cluster.placement_timeout_s) decides.
    """
    import ray

    from actors.scheduling import ActorsNotPlacedError, resources_now
    from learner.recipe_check import check_resources

    total = resources_now()[0]
    problems = check_resources(cfg, total)
    if problems and local:
        ray.shutdown()
        raise ActorsNotPlacedError(f"the local Ray ({total}) cannot place this run's actors: {'; '.join(problems)}; "
                                   "raise cluster.num_cpus, or ask for less")
    for problem in problems:
        log.warning("%s: waiting up to cluster.placement_timeout_s=%g s for the cluster to provide it", problem,
                    cfg.cluster.placement_timeout_s)


def run(cfg: RunConfig, smoke: bool = False) -> int:
    """One training run end to end; returns the process exit code."""
    if smoke:
        cfg = smoke_config(cfg)
    run_dir = resume_dir(cfg) or create_run_dir(cfg.runs_root, cfg.run_name, cfg.output_dir)
    setup_logging(run_dir, cfg.logging.log_level)
    log.info("run directory %s", run_dir)
    asked = cfg
    t0 = time.monotonic()
    data_root = ensure_data(cfg, progress=cfg.logging.progress_bar)
    cfg = preflight_config(cfg)  # bad records or PDDL stop the run here, before Ray, SFT or any model loads
    started_ray = _init_ray(cfg)
    _check_cluster(cfg, started_ray)  # before any model loads or SFT runs
    if started_ray:  # actors of a local Ray get absolute paths; a joined cluster keeps the job's working_dir
        update = {"data_root": str(data_root.resolve())}
        if cfg.sampler.pddl_root is not None:
            update["pddl_root"] = str(Path(cfg.sampler.pddl_root).resolve())
        cfg = cfg.model_copy(update={"sampler": cfg.sampler.model_copy(update=update)})
        data_root = data_root.resolve()
    model_path = ensure_model(cfg, data_root, run_dir)
    cfg = resolved_config(cfg, data_root, model_path)
    _write_run_config(asked, cfg, run_dir)
    _write_prompt_lengths(cfg, run_dir, model_path, data_root)
    from actors.placement import build_run_placement
    from learner.driver.loop import StepLoop  # imports ray and the actors

    placement = build_run_placement(cfg)  # None for cluster.placement: none
    if placement is not None:
        log.info("placement %s: groups %s", placement.plan.mode, sorted(placement.groups))
    try:
        loop = StepLoop(cfg, run_dir, model_path, data_root, placement=placement)
    except BaseException:
        if placement is not None:
            placement.remove()
        raise
    try:
        before = None
        test_samples = None
        wants_eval = cfg.eval.before_after or cfg.eval.eval_steps
        if wants_eval and (data_root / "test").is_dir():
            test_samples = load_test_samples(data_root, cfg.sampler.domains,
                                             max_per_domain=cfg.eval.max_problems_per_domain, sampler=cfg.sampler)
            loop.eval_samples = test_samples
        elif wants_eval:
            log.warning("%s has no test/ split: held-out evaluation is skipped", data_root)
        if test_samples is not None and cfg.eval.before_after:
            before = loop.evaluate(test_samples)
            log.info("held-out success before GRPO:\n%s", format_table(None, before))
        loop.run()
        if test_samples is not None and cfg.eval.before_after:
            after = loop.evaluate(test_samples)
            table = format_table(before, after)
            log.info("held-out greedy success, before -> after GRPO:\n%s", table)
            print(table, flush=True)
            loop.write_json("eval_before_after.json", {"before": before, "after": after})
    finally:
        loop.shutdown()
        if placement is not None:
            placement.remove()  # also kills the learner in it; a joined cluster gets its GPUs back at once
        if started_ray:
            import ray

            ray.shutdown()
    log.info("run finished in %.0f s: %s", time.monotonic() - t0, run_dir)
    print(f"run directory: {run_dir}", flush=True)
    return 0


def resolved_config(cfg: RunConfig, data_root: Path, model_path: str) -> RunConfig:
    """The config the step loop runs: `sampler.data_root` as the actors get it (absolute with a local Ray) and
    `learner.base_model` the model they load (a tiny or SFT model built in the run directory, else as given)."""
    return cfg.model_copy(update={
        "sampler": cfg.sampler.model_copy(update={"data_root": str(data_root)}),
        "learner": cfg.learner.model_copy(update={"base_model": model_path}),
    })


def _write_run_config(asked: RunConfig, cfg: RunConfig, run_dir: Path) -> None:
    """`config.yaml`: exactly the config the step loop gets, written once everything in it is resolved.

    A resumed run keeps its first config.yaml and writes its own as config.resumed.yaml. Values the driver
    resolved (paths, the built model, the domains the pre-flight found) are listed in a YAML comment at the top,
    with what the config asked for; the comment does not change what the file loads to.
    """
    changed = [f"#   {key}: {before!r} -> {after!r}" for key, before, after in _changed_keys(asked, cfg)]
    header = "# resolved by the driver before the first step (asked -> ran):\n" + "\n".join(changed) if changed else ""
    name = "config.resumed.yaml" if (run_dir / "config.yaml").exists() else "config.yaml"
    write_config(cfg, run_dir, name=name, header=header)


def _changed_keys(asked: RunConfig, ran: RunConfig) -> list[tuple[str, Any, Any]]:
    def flat(tree: dict, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    before, after = flat(asked.model_dump(mode="json")), flat(ran.model_dump(mode="json"))
    return [(k, before.get(k), after[k]) for k in after if before.get(k) != after[k]]


def _write_prompt_lengths(cfg: RunConfig, run_dir: Path, model_path: str, data_root: Path) -> None:
    """prompt_lengths.txt in the run directory; a tokenizer that cannot load here only costs the file."""
    from learner.driver.prompt_lengths import write_prompt_lengths

    limits = [n for n in (cfg.rollout.max_prompt_tokens, cfg.learner.max_prompt_length) if n]
    try:
        write_prompt_lengths(run_dir, model_path, data_root, cfg.sampler.domains, min(limits) if limits else None,
                             skip_bad=cfg.sampler.on_bad_record == "skip")
    except OSError as exc:  # e.g. a hub model the driver's node cannot download
        log.warning("prompt_lengths.txt not written: %s", exc)


def resume_dir(cfg: RunConfig) -> Path | None:
    """The run directory a resumed run continues in: the checkpoint's run, or output_dir / the newest run."""
    target = cfg.resume_from_checkpoint
    if not target:
        return None
    if target != "auto":
        ckpt = Path(target)
        if not ckpt.is_dir():
            raise FileNotFoundError(f"resume_from_checkpoint: {ckpt} is not a checkpoint directory")
        return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    if cfg.output_dir is not None:
        out = Path(cfg.output_dir)
        return out if (out / "config.yaml").exists() else None
    return latest_run(cfg.runs_root, cfg.run_name)


def latest_run(runs_root: str | Path, run_name: str) -> Path | None:
    """Newest run directory of a run name (for `resume_from_checkpoint: auto` across restarts)."""
    root = Path(runs_root)
    runs = sorted(p for p in root.glob(f"{run_name}-*") if (p / "config.yaml").exists())
    return runs[-1] if runs else None
