"""Hierarchical user profiling of LLM4CDSR (DESIGN.md section 3): the user side.

For one user, the items of a sequence are clustered by k-means over their text
embeddings (the MiniLM item vectors LLM4CDSR already has); the LLM writes one short
summary per cluster from the cluster's titles (with domain labels), then one summary of
those summaries: the profile. The profile text is embedded by the shipped MiniLM, and
LLM4CDSR uses that embedding as guidance in training (urllm/models/llm4cdsr.py,
`profile_loss`).

    profiles = build_profiles(dataset, {user: items, ...}, item_vectors, model, tokenizer, ProfileConfig())
    embeddings = embed_profiles(profiles)           # [P, 384], rows in profiles' order

Profiling costs (clusters + 1) LLM generations a user, so a run profiles a configurable
subset (ProfileConfig.train_users training users for the guidance, test_lines evaluated
lines for the app); all prompts of a round are generated in batches (greedy, left-padded).
An empty or whitespace-only generation falls back to the cluster's titles (or, for the
profile, to the joined cluster summaries), so every profile has text.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from urllm.data.dataset import Dataset
from urllm.methods.config import ProfileConfig


@dataclass
class UserProfile:
    items: list[int]  # the clustered items, oldest first
    clusters: list[dict] = field(default_factory=list)  # {"items": [ids], "summary": str}
    text: str = ""  # the summary of the summaries

    def to_json(self) -> dict:
        return asdict(self)


def cluster_items(items: list[int], vectors: np.ndarray, k: int, seed: int) -> list[list[int]]:
    """Distinct `items` grouped by k-means (scikit-learn, seeded) over their rows of
    `vectors`; each cluster keeps the items' order in `items`, clusters ordered by their
    most recent item (oldest first). At most k clusters, one per item when fewer."""
    distinct = list(dict.fromkeys(int(i) for i in items))
    if not distinct:
        return []
    k = min(k, len(distinct))
    if k == 1:
        return [distinct]
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(vectors[distinct].astype(np.float64))
    groups: dict[int, list[int]] = {}
    for item, label in zip(distinct, labels):
        groups.setdefault(int(label), []).append(item)
    position = {item: p for p, item in enumerate(distinct)}
    return sorted(groups.values(), key=lambda g: position[g[-1]])


def _titles(dataset: Dataset, items: list[int]) -> str:
    return "\n".join(f"- {dataset.item_titles[i]} ({dataset.domains[dataset.item_domain[i]]})" for i in items)


def cluster_request(dataset: Dataset, items: list[int]) -> str:
    return ("A user interacted with these items:\n" + _titles(dataset, items)
            + "\nIn one short sentence, describe what this user is interested in.")


def profile_request(summaries: list[str]) -> str:
    return ("Notes about one user's interests:\n" + "\n".join(f"- {s}" for s in summaries)
            + "\nIn one or two short sentences, write a profile of this user's tastes.")


def as_prompt(tokenizer, request: str) -> str:
    """The request as a chat turn when the tokenizer has a chat template (instruct models),
    else followed by "Answer:"."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": request}], tokenize=False,
                                             add_generation_prompt=True)
    return request + "\nAnswer:"


def generate_texts(model, tokenizer, requests: list[str], max_new_tokens: int, batch_size: int,
                   progress: str = "") -> list[str]:
    """Greedy answers to `requests`, batched with left padding (one line of text each)."""
    device = next(model.parameters()).device
    out: list[str] = []
    starts = range(0, len(requests), batch_size)
    for start in tqdm(starts, desc=progress, leave=False, disable=not progress):
        prompts = [as_prompt(tokenizer, r) for r in requests[start : start + batch_size]]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                          add_special_tokens=False).to(device)
        with torch.inference_mode():
            # small LMs loop on one phrase ("high-end, high-end, ..."): no repeated 3-grams
            ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 no_repeat_ngram_size=3,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for row in ids[:, batch["input_ids"].shape[1]:]:
            text = tokenizer.decode(row, skip_special_tokens=True)
            out.append(" ".join(text.split()))
    return out


def build_profiles(dataset: Dataset, sequences: dict[str, np.ndarray], item_vectors: np.ndarray, model, tokenizer,
                   cfg: ProfileConfig, seed: int = 0, progress: bool = True) -> dict[str, UserProfile]:
    """One profile per key of `sequences` (key -> item ids, oldest first): cluster, one
    LLM summary per cluster, a summary of the summaries (one cluster: its summary is the
    profile). Keys are kept (the caller names users or test lines)."""
    cfg.validate()
    profiles = {}
    for key, seq in sequences.items():
        items = [int(i) for i in np.asarray(seq)[-cfg.max_items:]]
        profiles[key] = UserProfile(items, [{"items": c} for c in cluster_items(items, item_vectors, cfg.clusters, seed)])
    clusters = [c for p in profiles.values() for c in p.clusters]
    requests = [cluster_request(dataset, c["items"][-cfg.titles_per_cluster:]) for c in clusters]
    answers = generate_texts(model, tokenizer, requests, cfg.max_new_tokens, cfg.batch_size,
                             "profile clusters" if progress else "")
    for cluster, answer in zip(clusters, answers):
        titles = ", ".join(dataset.item_titles[i] for i in cluster["items"][-cfg.titles_per_cluster:])
        cluster["summary"] = answer or f"Interested in {titles}."  # documented fallback for an empty answer
    multi = [p for p in profiles.values() if len(p.clusters) > 1]
    answers = generate_texts(model, tokenizer, [profile_request([c["summary"] for c in p.clusters]) for p in multi],
                             cfg.max_new_tokens, cfg.batch_size, "profile summaries" if progress else "")
    for profile, answer in zip(multi, answers):
        profile.text = answer or " ".join(c["summary"] for c in profile.clusters)
    for profile in profiles.values():
        if len(profile.clusters) == 1:
            profile.text = profile.clusters[0]["summary"]
        elif not profile.clusters:
            profile.text = "No items yet."
    return profiles


def embed_profiles(profiles: dict[str, UserProfile]) -> np.ndarray:
    """[P, 384] MiniLM embeddings of the profile texts, rows in `profiles`' order."""
    from urllm.models.item_text import minilm_item_embeddings

    if not profiles:
        return np.zeros((0, 384), dtype=np.float32)
    return minilm_item_embeddings([p.text for p in profiles.values()])


# ------------------------------------------------------------------ a run's profiles

PROFILES_JSON = "profiles.json"
PROFILE_EMBEDDINGS = "profile_embeddings.safetensors"


def run_sequences(dataset: Dataset, cfg: ProfileConfig, eval_lines: list[int], seed: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What a run profiles: ({user: training sequence} of a seeded sample of `train_users`
    training users, {test line: its history} of the first `test_lines` of `eval_lines`).
    A training sequence holds train-split items only, so no valid or test target leaks
    into the guidance."""
    from urllm.models.sequences import merged_user_sequences

    rows = merged_user_sequences(dataset.splits["train"])
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(rows), min(cfg.train_users, len(rows)), replace=False).tolist())
    train = {str(rows[i][0]): rows[i][1] for i in picked}
    test = dataset.splits["test"]
    lines = {str(line): test[line].history for line in eval_lines[: cfg.test_lines]}
    return train, lines


def save_run_profiles(run_dir, train: dict[str, UserProfile], lines: dict[str, UserProfile], cfg: ProfileConfig):
    """profiles.json (texts and clusters) and profile_embeddings.safetensors (the
    training users' MiniLM profile embeddings, the guidance); returns both paths."""
    from pathlib import Path

    from urllm.io import atomic_save_tensors, atomic_write_json

    run_dir = Path(run_dir)
    embeddings = embed_profiles(train)
    atomic_save_tensors(run_dir / PROFILE_EMBEDDINGS,
                        {"users": torch.tensor([int(u) for u in train], dtype=torch.long),
                         "embeddings": torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))})
    atomic_write_json(run_dir / PROFILES_JSON, {"config": asdict(cfg),
                                                "train_users": {u: p.to_json() for u, p in train.items()},
                                                "test_lines": {line: p.to_json() for line, p in lines.items()}})
    return [run_dir / PROFILES_JSON, run_dir / PROFILE_EMBEDDINGS]


def load_guidance(run_dir) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(users, embeddings) of a run's profiled training users, or None when it has none."""
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(run_dir) / PROFILE_EMBEDDINGS
    if not path.is_file():
        return None
    tensors = load_file(path)
    return (tensors["users"], tensors["embeddings"]) if len(tensors["users"]) else None
