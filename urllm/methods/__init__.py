"""The three methods built on the models and the LLM pieces: URLLM's stage 2, LLM4CDSR's profiles, RSLLM."""
