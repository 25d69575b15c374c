"""Prompt assembly (URLLM step 3): instruction, the retrieved neighbours' sequences, the
user's own history, and the request for a new item of the target domain.

The builder returns the sections separately, with a token count for each, so the app can
highlight them. Token budget policy (stated, tested): while the whole prompt (chat
template included) is over `max_tokens`, drop the OLDEST item of the LONGEST list among
the user's history and each neighbour's sequence (a neighbour's list goes first on a
tie), so a long history cannot crowd the neighbours out entirely; once the neighbours are
empty, the user's own history shrinks alone. The user's most recent item is never
dropped. If even the minimal prompt does not fit, PromptTooLong says by how much.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from urllm.data.dataset import Dataset
from urllm.llm.config import PromptConfig

SECTIONS = ("instruction", "neighbors", "history", "question")


class PromptTooLong(ValueError):
    pass


@dataclass
class Prompt:
    sections: dict[str, str]  # SECTIONS -> text
    tokens: dict[str, int]  # SECTIONS + "template" -> token count
    text: str  # the full model input (chat template applied)
    kept: dict[str, int] = field(default_factory=dict)  # items shown: "history", "neighbors"
    dropped: dict[str, int] = field(default_factory=dict)  # items dropped by the budget

    @property
    def n_tokens(self) -> int:
        return sum(self.tokens.values())


def item_line(dataset: Dataset, item: int) -> str:
    return f"[{dataset.domains[int(dataset.item_domain[item])]}] {dataset.item_titles[item]}"


def answer_text(dataset: Dataset, item: int) -> str:
    """What the model is trained to answer: the target's title alone."""
    return dataset.item_titles[item]


def chat_text(tokenizer, user_text: str) -> str:
    """The model input for one user turn: the tokenizer's chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
        )
    return f"{user_text}\nAnswer: "


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


class PromptBuilder:
    def __init__(self, dataset: Dataset, tokenizer, cfg: PromptConfig | None = None):
        self.dataset, self.tokenizer, self.cfg = dataset, tokenizer, cfg or PromptConfig()

    def _sections(self, history: list[int], neighbors: list[list[int]], domain: int,
                  candidates: list[int] | None = None) -> dict[str, str]:
        ds = self.dataset
        a, b = ds.domains
        instruction = (
            f"You recommend products of a shop with two domains, {a} and {b}. "
            "Items are listed oldest first, each with its domain in brackets."
        )
        blocks = [
            f"Similar user {i + 1} bought:\n" + "\n".join(item_line(ds, it) for it in items)
            for i, items in enumerate(n for n in neighbors if n)
        ]
        if history:
            history_text = "This user bought:\n" + "\n".join(item_line(ds, it) for it in history)
        else:
            history_text = "This user has bought nothing yet."
        question = f"Recommend one new {ds.domains[domain]} item for this user. Answer with its title only."
        if candidates:  # LLaRA-style: choose from a list (item-id order: the list's order says nothing of a ranking)
            question = (f"Candidate {ds.domains[domain]} items:\n" + "\n".join(ds.item_titles[i] for i in sorted(candidates))
                        + f"\n\nWhich one of these {ds.domains[domain]} items will this user choose next? "
                          "Answer with its title only.")
        return {"instruction": instruction, "neighbors": "\n".join(blocks), "history": history_text, "question": question}

    def build(self, history: np.ndarray, domain: int, neighbors: list[np.ndarray] | None = None,
              candidates: list[int] | None = None) -> Prompt:
        """The prompt for a line; with `candidates` the question lists them (the re-ranker's
        `list_candidates`). The budget applies to the prompt without the list, so the history
        and neighbours shown are the same with and without it."""
        cfg = self.cfg
        neighbors = neighbors or []
        own = [int(i) for i in np.asarray(history)[len(history) - min(len(history), cfg.max_history) :]]
        nbrs = [[int(i) for i in np.asarray(n)[len(n) - min(len(n), cfg.max_neighbor_items) :]] for n in neighbors]
        dropped = {"history": len(history) - len(own), "neighbors": sum(len(n) for n in neighbors) - sum(map(len, nbrs))}
        while True:
            sections = self._sections(own, nbrs, domain)
            text = chat_text(self.tokenizer, "\n\n".join(v for v in sections.values() if v))
            n_tokens = _count(self.tokenizer, text)
            if n_tokens <= cfg.max_tokens:
                break
            longest = max(range(len(nbrs)), key=lambda j: len(nbrs[j]), default=None)
            if longest is not None and nbrs[longest] and len(nbrs[longest]) >= len(own):
                nbrs[longest].pop(0)
                dropped["neighbors"] += 1
            elif len(own) > 1:
                own.pop(0)
                dropped["history"] += 1
            elif longest is not None and nbrs[longest]:  # only the user's last item is left
                nbrs[longest].pop(0)
                dropped["neighbors"] += 1
            else:
                raise PromptTooLong(
                    f"the minimal prompt (instruction, question, the user's last item) takes {n_tokens} tokens,"
                    f" over the budget of {cfg.max_tokens}: raise max_tokens"
                )
        if candidates:
            sections = self._sections(own, nbrs, domain, candidates)
            text = chat_text(self.tokenizer, "\n\n".join(v for v in sections.values() if v))
            n_tokens = _count(self.tokenizer, text)
        tokens = {name: _count(self.tokenizer, sections[name]) if sections[name] else 0 for name in SECTIONS}
        tokens["template"] = n_tokens - sum(tokens.values())  # chat template and separators
        kept = {"history": len(own), "neighbors": sum(map(len, nbrs))}
        return Prompt(sections, tokens, text, kept, dropped)
