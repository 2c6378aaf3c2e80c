"""Students, tokenizers and LoRA: building, loading and adapting causal LMs (heavy imports stay inside functions)."""
