"""The LLM stage: base causal-LM loading (the embedded SmolLM2 or any local HF folder), LoRA, generation."""
