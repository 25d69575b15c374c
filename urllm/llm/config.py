"""Configs of the LLM pieces: the prompt budget, decoding and LoRA training (no torch here)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PromptConfig:
    max_tokens: int = 512  # budget of the whole prompt, chat template included
    max_history: int = 30  # most recent items of the user considered before the budget
    max_neighbor_items: int = 15  # most recent items of each neighbour considered



VARIANTS = ("free", "constrained", "candidates", "refined")



@dataclass
class GenerationConfig:
    num_beams: int = 10  # beams, and outputs kept per variant
    max_new_tokens: int = 48  # longest answer in tokens
    top_k: int = 20  # length of every ranked list (HR@20 needs 20)
    candidates: int = 50  # dual-graph top-N the "candidates" trie is built from
    refine_m: int = 5  # Algorithm 1: top grounded items checked for the domain
    length_penalty: float = 1.0
    # test lines searched together: their beams share each forward pass (same outputs as one
    # line at a time up to float rounding; 1 = one line at a time)
    batch_lines: int = 16
    # free text ends at a newline like at eos, and runs at most as many tokens as the longest
    # catalogue title (+ 2): a tuned LM rarely emits eos and would otherwise run to max_new_tokens
    stop_at_title_end: bool = True
    # fold a LoRA adapter into the weights before generating: one product per projection
    # instead of three (same model; bfloat16 rounds the folded sums slightly differently)
    merge_adapter: bool = True

    def validate(self) -> None:
        for name in ("num_beams", "max_new_tokens", "top_k", "candidates", "refine_m", "batch_lines"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GenerationConfig.{name}={getattr(self, name)!r}: must be >= 1")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"GenerationConfig.dtype={self.dtype!r}: expected float32, bfloat16 or float16")
    # weights and activations while generating: bfloat16 halves the memory each decode step
    # reads and runs 2.5x faster on CPUs with avx512_bf16 / AMX; "float32" for exact sums
    dtype: str = "bfloat16"



@dataclass
class LoraTrainConfig:
    r: int = 8  # LoRA rank
    alpha: int = 16  # LoRA scaling numerator
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    steps: int = 60  # optimizer steps
    batch_size: int = 4  # examples per step
    lr: float = 3e-4
    warmup: int = 5  # linear warm-up steps, then cosine decay
    seed: int = 0
    progress: bool = True
    # the forward pass while training: "bfloat16" (autocast; weights and optimizer stay
    # float32) or "float32"
    dtype: str = "bfloat16"
    # ranking loss (finetune.RankLoss): hard negatives per example, drawn from the dual-graph
    # top-`negatives_from` of its training line; 0 = the answer loss alone
    negatives: int = 0
    negatives_from: int = 20  # as RerankConfig.candidates: the list the re-ranker re-orders
    rank_weight: float = 1.0  # the listwise term's weight beside the answer loss
    rank_temperature: float = 1.0  # softmax temperature on the mean log-probabilities per token

    def validate(self) -> None:
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"LoraTrainConfig.dtype={self.dtype!r}: expected bfloat16 or float32")
        if self.negatives_from < 1 or self.rank_weight < 0 or self.rank_temperature <= 0:
            raise ValueError(f"LoraTrainConfig negatives_from={self.negatives_from!r} must be >= 1, rank_weight="
                             f"{self.rank_weight!r} >= 0 and rank_temperature={self.rank_temperature!r} > 0")
        for name, ok in {"r": self.r >= 1, "alpha": self.alpha >= 1, "steps": self.steps >= 1,
                         "batch_size": self.batch_size >= 1, "lr": self.lr > 0, "dropout": 0 <= self.dropout < 1}.items():
            if not ok:
                raise ValueError(f"LoraTrainConfig.{name}={getattr(self, name)!r} is out of range")



@dataclass
class RerankConfig:
    """URLLM's LLM re-ranking of the dual-graph top-N (urllm/methods/rerank.py)."""

    candidates: int = 20  # dual-graph top-N the LLM scores (items below keep their dual-graph order)
    # the LLM's weight in the fusion z(dual-graph score) + w * z(LLM score); chosen on valid lines by MRR
    weights: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])
    # the LLM score of a title minus its score after a prompt with no history and no neighbours
    # (pointwise mutual information): takes out how likely a title is for any user
    calibrate: bool = True
    valid_lines: int = 0  # validation lines scored to choose the weight: 0 = all, else a seeded sample
    batch_lines: int = 4  # prompts whose candidates share one forward pass
    # LLaRA-style: the prompt's question lists the N candidates' titles (item-id order; outside
    # the prompt's token budget) and asks which one comes next; False = free recall
    list_candidates: bool = False

    def validate(self) -> None:
        for name in ("candidates", "batch_lines"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"RerankConfig.{name}={getattr(self, name)!r}: must be >= 1")
        if any(w < 0 for w in self.weights):
            raise ValueError(f"RerankConfig.weights={self.weights!r}: expected weights >= 0")
