"""Before the step loop: data for the run (built when missing), the tiny model (built and warm-started by SFT).

The embedded default (`python -m learner.main`) needs neither a data set nor model weights from a hub:
it generates compact-prompt problems for the five domains, builds a word-level tokenizer and a small
causal LM from a transformers config, and warm-starts it on gold plans. The result is saved as a
normal checkpoint directory, so the learner and rollout actors load it through the same
`from_pretrained` path a real model takes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from learner.config.run import RunConfig

log = logging.getLogger(__name__)


class DataRootError(FileNotFoundError):
    """sampler.data_root holds no data and the config does not let the driver build it (exit 2, no traceback)."""


def has_jsonl(data_root: str | Path) -> bool:
    root = Path(data_root)
    return root.is_dir() and any(root.glob("*.jsonl"))


def ensure_data(cfg: RunConfig, progress: bool = True) -> Path:
    """The data root of the run; a dataset is generated there when it holds no JSONL and the config allows it."""
    root = Path(cfg.sampler.data_root)
    if has_jsonl(root):
        if cfg.data.build_if_missing:
            warn_generated_with_other_settings(cfg, root)
        return root
    if not cfg.data.build_if_missing:
        raise DataRootError(
            f"{root}: no <domain>.jsonl files; build data with `python -m sampler.build_data --out {root}` "
            "or set data.build_if_missing=true"
        )
    from sampler.datagen.builder import build_dataset

    log.info("building %s-size %s-prompt data into %s (%d problems per domain)",
             cfg.data.sizes, cfg.data.prompt_style, root, cfg.data.per_domain)
    meta = build_dataset(
        root,
        domains=cfg.sampler.domains,
        per_domain=cfg.data.per_domain,
        sizes=cfg.data.sizes,
        prompt_style=cfg.data.prompt_style,
        constraints=cfg.data.constraints,
        test_fraction=cfg.data.test_fraction,
        seed=cfg.seed,
        workers=cfg.data.workers,
        progress=progress,
    )
    log.info("data built in %.1f s", float(meta.get("build_seconds") or 0.0))
    return root


GENERATION_KEYS = ("seed", "per_domain", "sizes", "prompt_style", "constraints", "test_fraction")


def warn_generated_with_other_settings(cfg: RunConfig, root: Path) -> list[str]:
    """A warning per setting the data root was generated with (its metadata.json) that this run asks otherwise.

    Data found is used as it is, so `seed=1` after a seed-3407 run trains on seed 3407's problems: the
    warning says so, and how to get the data of this run's settings. Data without the generator's
    metadata (a user's own) is not judged. Returns the differences (for tests).
    """
    try:
        built = json.loads((root / "metadata.json").read_text()).get("arguments") or {}
    except (OSError, ValueError, AttributeError):
        return []
    asked = {"seed": cfg.seed, **{k: getattr(cfg.data, k) for k in GENERATION_KEYS if k != "seed"}}
    diffs = [f"{k}={built[k]!r} (this run: {asked[k]!r})" for k in GENERATION_KEYS
             if k in built and built[k] != asked[k]]
    if diffs:
        log.warning("%s was generated with %s and is used as it is: this run trains on that data, not on data "
                    "of its own settings. Remove the folder (or point sampler.data_root at an empty one) to "
                    "generate data for these settings; data.build_if_missing=false uses found data unchecked.",
                    root, ", ".join(diffs))
    return diffs


def _read_jsonl(path: Path) -> list[dict]:
    """Records of one JSONL file (vocabulary of the tiny tokenizer only). The pre-flight already reported bad
    lines (sampler.preflight); under sampler.on_bad_record: skip they are still in the file and skipped here too."""
    rows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("prompt"), str):
                rows.append(rec)
    return rows


def ensure_model(cfg: RunConfig, data_root: Path, run_dir: Path) -> str:
    """The model path the actors load: `learner.base_model`, or a tiny model built (and SFT'd) in the run dir."""
    if cfg.learner.base_model != "tiny" and not cfg.sft.enabled:
        return cfg.learner.base_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.learner.base_model == "tiny":
        from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer(_vocabulary_texts(data_root))
        tm = cfg.tiny_model
        path = build_tiny_model(
            tokenizer, run_dir / "tiny_model", arch=tm.arch, layers=tm.layers, hidden=tm.hidden, ffn=tm.ffn,
            heads=tm.heads, seed=cfg.seed,
        )
        log.info("tiny model built at %s (vocabulary %d)", path, len(tokenizer))
        if not cfg.sft.enabled:
            return str(path)
    else:
        path = cfg.learner.base_model
        tokenizer = AutoTokenizer.from_pretrained(path)
    import torch

    from learner.sft import load_sft_records, run_sft

    records = load_sft_records(data_root, cfg.sampler.domains, skip_bad=cfg.sampler.on_bad_record == "skip")
    if cfg.sft.num_threads:
        torch.set_num_threads(cfg.sft.num_threads)
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(str(path))
    metrics = run_sft(
        model, tokenizer, records, steps=cfg.sft.steps, minutes=cfg.sft.minutes, lr=cfg.sft.learning_rate,
        lr_schedule=cfg.sft.lr_schedule, batch_size=cfg.sft.batch_size, seed=cfg.seed,
        progress=cfg.logging.progress_bar,
    )
    log.info("SFT: %d steps in %.0f s, loss %.3f -> %.3f", metrics.steps, metrics.seconds,
             metrics.first_loss, metrics.final_loss)
    out = run_dir / "sft_model"
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return str(out)


def _vocabulary_texts(data_root: Path) -> list[str]:
    """Every prompt and gold plan, train and test, so held-out problems have no unknown words."""
    texts: list[str] = []
    for f in sorted(data_root.glob("*.jsonl")) + sorted((data_root / "test").glob("*.jsonl")):
        for r in _read_jsonl(f):
            texts.append(r["prompt"])
            if isinstance(r.get("response"), str) and r["response"]:
                texts.append(r["response"])
    return texts
