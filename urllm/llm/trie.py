"""Token prefix trie over item titles: the constraint that makes every constrained output
a real item of the target domain (URLLM step 5).

Each title is tokenized exactly as the model is trained to answer it (title alone, no
special tokens) and closed by the end-of-sequence token, so a title that is a prefix of
another can still end. Titles that tokenize identically share a leaf holding all their
item ids. A title that tokenizes to nothing cannot be generated and is counted in
`skipped`.
"""
from __future__ import annotations

END = -1  # key of the item ids stored at a leaf


class TitleTrie:
    def __init__(self, token_ids: list[list[int]], item_ids: list[int], eos_id: int):
        self.root: dict = {}
        self.eos_id = eos_id
        self.skipped: list[int] = []
        for tokens, item in zip(token_ids, item_ids):
            if not tokens:
                self.skipped.append(item)
                continue
            node = self.root
            for t in [*tokens, eos_id]:
                node = node.setdefault(t, {})
            node.setdefault(END, []).append(item)
        self.n_titles = len(item_ids) - len(self.skipped)

    @classmethod
    def from_items(cls, tokenizer, titles: list[str], item_ids: list[int]) -> TitleTrie:
        encoded = tokenizer(titles, add_special_tokens=False)["input_ids"] if titles else []
        return cls(encoded, item_ids, tokenizer.eos_token_id)

    def node(self, prefix: list[int]) -> dict | None:
        node = self.root
        for t in prefix:
            node = node.get(t)
            if node is None:
                return None
        return node

    @staticmethod
    def allowed(node: dict | None) -> list[int]:
        """Tokens that may follow; empty at a leaf or off the trie."""
        return [t for t in node if t != END] if node else []

    @staticmethod
    def items(node: dict | None) -> list[int]:
        """Item ids of a finished title (the node reached after eos)."""
        return list(node.get(END, [])) if node else []
