"""Built-in student architectures (Llama, from config) and loading of local Hugging Face checkpoints.

The built-in students play the role of a pretrained base: ``iga pretrain`` trains them once on domain-covering
text (see :mod:`iga.models.pretrain`), and the distillation runs adapt that base with LoRA.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class StudentSpec:
    """Shape of a built-in Llama-architecture student."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512

    def llama_config(
        self,
        vocab_size: int,
        *,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
    ) -> Any:
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_attention_heads,
            max_position_embeddings=self.max_position_embeddings,
            tie_word_embeddings=True,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
        )


#: ``micro`` is for unit tests (≈0.1 M), ``tiny`` ≈ 1 M (fast tests), ``small`` ≈ 7 M (the demo: the largest
#: size whose pretraining and two distillation runs fit the demo's 10-minute budget on 2 CPU cores),
#: ``medium`` ≈ 11 M (experiments with more time).
STUDENTS: dict[str, StudentSpec] = {
    "micro": StudentSpec(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "tiny": StudentSpec(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=344),
    "small": StudentSpec(hidden_size=320, num_hidden_layers=5, num_attention_heads=5, intermediate_size=860),
    "medium": StudentSpec(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1024
    ),
}


def student_spec(name: str) -> StudentSpec:
    try:
        return STUDENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown student {name!r}; built-in students: {', '.join(STUDENTS)} "
            "(or give a local checkpoint path)"
        ) from None


def build_student(name: str, tokenizer: Any, *, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised built-in student sized for ``tokenizer`` (init fixed by ``seed``)."""
    import torch
    from transformers import LlamaForCausalLM

    cfg = student_spec(name).llama_config(
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model


def spec_dict(name: str) -> dict:
    return asdict(student_spec(name))


def load_causal_lm(
    path: str | os.PathLike, *, trust_remote_code: bool = False, dtype: Any = None
) -> PreTrainedModel:
    """Load a local HF causal-LM checkpoint (safetensors preferred), with clear errors for common mistakes."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the per-file "Loading weights" bar is noise in our progress output
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model path does not exist: {path}")
    if not (path / "config.json").exists():
        raise ValueError(f"{path} is not a Hugging Face checkpoint folder (no config.json)")
    config = AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not trust_remote_code:
        raise ValueError(
            f"{path} holds a {type(config).__name__} (model_type {config.model_type!r}), which is not a "
            "causal language model"
        )
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin")]
    if not weights:
        raise ValueError(f"{path} has a config.json but no weights (*.safetensors or *.bin)")
    return AutoModelForCausalLM.from_pretrained(
        str(path),
        local_files_only=True,
        trust_remote_code=trust_remote_code,
        dtype=dtype,
        use_safetensors=any(w.suffix == ".safetensors" for w in weights) or None,
    )
