"""URLLM Studio: LLM-based cross-domain sequential recommendation, trained and inspected."""
