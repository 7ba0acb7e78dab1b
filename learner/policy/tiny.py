"""Build the tiny word-level tokenizer and causal LM of the CPU default, saved like any HF checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
# Metaspace marks "a word that followed a space", so decode restores spacing exactly:
# "(unstack a b)\n(putdown a)" -> ( unstack ▁a ▁b ) \n ( putdown ▁a ) -> the same text.
_SPACE_MARK = "▁"


def build_tiny_tokenizer(texts: Iterable[str], out_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `texts`: words, "(", ")" and newlines are tokens; decode restores the text.

    Spaces and tabs are collapsed to one space and dropped around newlines (normalizer), so decode
    gives back the normalized text exactly. Words never seen in `texts` become `<unk>`. Encoding
    prepends `<bos>` (like Llama tokenizers), and `<eos>` ends every training target.
    """
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(r"\r\n?"), "\n"),
            normalizers.Replace(Regex(r"[ \t]+"), " "),
            normalizers.Replace(Regex(r" ?\n ?"), "\n"),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[()\n]"), behavior="isolated"),
            pre_tokenizers.Metaspace(replacement=_SPACE_MARK, prepend_scheme="never", split=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=_SPACE_MARK, prepend_scheme="never", split=True)
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        clean_up_tokenization_spaces=False,
        padding_side="left",  # generation pads on the left; training code sets its own side
    )
    if out_dir is not None:
        hf_tok.save_pretrained(str(out_dir))
    return hf_tok


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    out_dir: str | Path,
    arch: str = "llama",
    layers: int = 4,
    hidden: int = 128,
    ffn: int = 384,
    heads: int = 4,
    tie_embeddings: bool = True,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised causal LM (Llama or Qwen2 config) and `tokenizer` into `out_dir`.

    The result loads through `AutoModelForCausalLM.from_pretrained(out_dir)` and
    `AutoTokenizer.from_pretrained(out_dir)`, the code path real checkpoints take.
    """
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if arch == "llama":
        config = LlamaConfig(**common)
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    else:
        raise ValueError(f"unknown tiny model arch {arch!r}; expected 'llama' or 'qwen2'")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
