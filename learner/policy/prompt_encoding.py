"""Prompt encoding shared by the rollout engines, SFT and prompt_lengths.txt: one function, so every role
tokenizes a prompt the same way (chat template when the tokenizer has one, left truncation).

It imports neither ray nor actors: SFT (learner.sft) and the engines (actors/engines) both import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Prompt = str | Sequence[int]  # text, or token ids already templated and tokenized


def encode_prompt(
    tokenizer: Any, prompt: Prompt, *, use_chat_template: bool, max_prompt_tokens: int | None
) -> list[int]:
    """Token ids of one prompt. Text goes through the tokenizer's chat template (as a user turn with
    the generation prompt) when asked and the tokenizer has one, else through the plain tokenizer;
    token ids are taken as they are. Over-long prompts keep their end, where the question is."""
    if isinstance(prompt, str):
        if use_chat_template and getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, Mapping) or hasattr(ids, "input_ids"):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
        else:
            ids = tokenizer(prompt).input_ids
    else:
        ids = prompt
    ids = [int(t) for t in ids]
    if not ids:
        raise ValueError("empty prompt: a prompt needs at least one token")
    return ids[-max_prompt_tokens:] if max_prompt_tokens is not None else ids
