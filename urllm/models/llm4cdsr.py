"""LLM4CDSR (arXiv 2504.18383, DESIGN.md section 3): the recommender side.

Items are represented by frozen text embeddings (urllm/models/item_text.py: MiniLM, the
base LM, or both) reduced by PCA twice: one global table over all items, and one table
per domain fitted on that domain's items only. Trainable adapters (Linear-GELU-Linear +
LayerNorm) map them to the model width. A small trainable ID embedding is added
(`LLM4CDSRConfig.item_ids`) because text alone can not tell apart items with near-identical
texts (sizes, colours, volumes of one product) and carries no popularity; initialised at
std 0.02 against unit-scale adapted text, it starts close to a text-only model and moves
only where the interactions push it.

Three CAUSAL transformer threads read a user's interleaved sequence (the encoder of the
dual-graph model, urllm/models/encoder.py): the mixed thread over the adapted global embeddings
of every item, and one thread per domain over that domain's items only, in order. The
user vector for target domain X after position p is H_mixed[p] + H_X[p] (H_X taken at the
last X item up to p; URLLM Eq. 14, so the two methods are comparable), and it scores the
items of X by dot product with their adapted global embeddings.

Losses: next-item cross-entropy over the label's domain with sampled negatives that are
the same for every position of a batch, plus the contrastive regularisation of the
adapter between the two domains (`LLM4CDSRModel.contrastive_loss`), and, for users with
a hierarchical LLM profile (urllm/methods/llm4cdsr_profiles.py), the profile guidance
(`LLM4CDSRModel.profile_loss`): the mixed thread's state after a user's training
sequence is pulled towards the user's adapted profile embedding. Guidance shapes
training only; scoring reads sequences alone, so users without a profile (and new
users) are scored the same way.

Train with `train_llm4cdsr(dataset, cfg, fit_cfg, text_embeddings)`: urllm.models.trainer.fit
drives the model unchanged (selection on VALID only), and
`urllm.models.trainer.SequenceScorer(model)` is its evaluation view, e.g.
    emb = item_text_embeddings(ds, "minilm", cache_dir="artifacts/cache")
    model, result = train_llm4cdsr(ds, LLM4CDSRConfig(), FitConfig(), emb)
    evaluate(SequenceScorer(model), ds, "test")
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from urllm.data.dataset import Dataset
from urllm.models.config import LLM4CDSRConfig
from urllm.models.encoder import CausalEncoder, domain_thread_states, full_softmax_loss, label_groups, last_states, sampled_softmax_loss
from urllm.models.item_text import pca_reduce
from urllm.models.trainer import FitConfig, FitResult, fit
from urllm.seed import seed_everything

CONTRASTIVE_MAX_ITEMS = 1024  # items per batch in the contrastive term (a random subset beyond)


class Adapter(nn.Module):
    """Linear-GELU-Linear + LayerNorm: frozen text vectors -> trainable item embeddings."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.mlp(x))


@dataclass
class TextItemTables:
    """The adapted item embeddings of one forward pass (row N of the [N+1, d] tables is the zero pad)."""

    mixed: torch.Tensor  # [N+1, d] input of the mixed thread and the scoring table
    domain: tuple[torch.Tensor, torch.Tensor]  # [N+1, d] inputs of the A and B threads (zero rows for the other domain)
    adapted: torch.Tensor  # [N, d] the global adapter's output alone (no ID part), for the contrastive term


def unit_rms(x: np.ndarray) -> np.ndarray:
    """x scaled by one constant to a root-mean-square of 1, so the adapters see inputs of the
    same size whatever the embedder (LM hidden states are far larger than MiniLM's unit
    vectors); the ratios between components are kept."""
    return x / max(float(np.sqrt(np.mean(np.square(x)))), 1e-12)


class LLM4CDSRModel(nn.Module):
    """The tri-thread model over adapted text embeddings (module docstring).

    Built from PCA-reduced text tables: `global_text` [N, g] (rows in item-id order) and
    `domain_text` = ([n_A, l], [n_B, l]) (rows in `domain_items(d)` order). The tables are
    frozen, persistent buffers: a saved state dict scores without the text embedder.
    `from_text_embeddings` does the reduction from raw embeddings.

    `profiles` = (users [P], embeddings [P, p]): the profile embeddings of P users (indexes
    into Dataset.users, `n_users` in all) for the guidance term; None: no guidance.
    """

    def __init__(self, cfg: LLM4CDSRConfig, item_domain: torch.Tensor, global_text: torch.Tensor,
                 domain_text: tuple[torch.Tensor, torch.Tensor],
                 profiles: tuple[torch.Tensor, torch.Tensor] | None = None, n_users: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.n_items = n = len(item_domain)
        item_domain = item_domain.long()
        self.register_buffer("item_domain", torch.cat([item_domain, torch.tensor([-1])]), persistent=False)
        self.register_buffer("domain_items_a", torch.nonzero(item_domain == 0).flatten(), persistent=False)
        self.register_buffer("domain_items_b", torch.nonzero(item_domain == 1).flatten(), persistent=False)
        local = torch.zeros(n, dtype=torch.long)  # item id -> its column among its domain's items
        for d in (0, 1):
            local[self.domain_items(d)] = torch.arange(len(self.domain_items(d)))
        self.register_buffer("local_column", local, persistent=False)
        if global_text.shape[0] != n:
            raise ValueError(f"global_text has {global_text.shape[0]} rows for {n} items")
        self.register_buffer("global_text", global_text.float())
        for d, name in ((0, "domain_text_a"), (1, "domain_text_b")):
            if domain_text[d].shape[0] != len(self.domain_items(d)):
                raise ValueError(f"domain_text[{d}] has {domain_text[d].shape[0]} rows for "
                                 f"{len(self.domain_items(d))} items of domain {d}")
            self.register_buffer(name, domain_text[d].float())

        self.global_adapter = Adapter(global_text.shape[1], cfg.adapter_hidden, cfg.dim)
        self.domain_adapters = nn.ModuleList(
            [Adapter(domain_text[d].shape[1], cfg.adapter_hidden, cfg.dim) for d in (0, 1)])
        self.item_id = nn.Embedding(n, cfg.dim) if cfg.item_ids else None
        if self.item_id is not None:
            nn.init.normal_(self.item_id.weight, std=0.02)
        self.mixed_encoder = CausalEncoder(cfg)
        self.domain_encoders = nn.ModuleList([CausalEncoder(cfg), CausalEncoder(cfg)])
        self.text_head = nn.Linear(cfg.dim, global_text.shape[1], bias=False)  # adapted item -> text space
        # Scores are dot products / sqrt(dim): user and item vectors come out of LayerNorms
        # (norm ~ sqrt(dim)), and raw dot products of that size start the cross-entropy far
        # above log(#candidates) (18.5 instead of 3.7 at dim 64 on synthetic data).
        self.logit_scale = cfg.dim ** -0.5
        self.profile_adapter = None
        if profiles is not None and len(profiles[0]) and cfg.profile_weight > 0:
            users, embeddings = profiles
            if len(users) != len(embeddings) or int(users.max()) >= n_users:
                raise ValueError(f"profiles: {len(users)} users (max {int(users.max())}) for {len(embeddings)} "
                                 f"embeddings and n_users={n_users}")
            table = torch.zeros(n_users, embeddings.shape[1])
            table[users.long()] = embeddings.float()
            self.register_buffer("profile_table", table, persistent=False)
            self.register_buffer("profiled", torch.zeros(n_users, dtype=torch.bool).index_fill(0, users.long(), True),
                                 persistent=False)
            self.profile_adapter = Adapter(embeddings.shape[1], cfg.adapter_hidden, cfg.dim)

    @property
    def uses_user_ids(self) -> bool:
        """True when the trainer must pass each row's user (the profile guidance is on)."""
        return self.profile_adapter is not None

    @classmethod
    def from_text_embeddings(cls, cfg: LLM4CDSRConfig, item_domain: np.ndarray, text_embeddings: np.ndarray,
                             seed: int = 0, profiles: tuple[torch.Tensor, torch.Tensor] | None = None,
                             n_users: int = 0) -> LLM4CDSRModel:
        """Global PCA to `global_dim` over all items, per-domain PCA to `domain_dim` over each
        domain's items (unsupervised, on item texts only), each table scaled to unit RMS."""
        if text_embeddings.ndim != 2 or len(text_embeddings) != len(item_domain):
            raise ValueError(f"text_embeddings: expected [{len(item_domain)}, width], got {text_embeddings.shape}")
        global_text = unit_rms(pca_reduce(text_embeddings, cfg.global_dim, seed))
        domain_text = tuple(
            torch.from_numpy(unit_rms(pca_reduce(text_embeddings[item_domain == d], cfg.domain_dim, seed)))
            for d in (0, 1))
        return cls(cfg, torch.from_numpy(np.asarray(item_domain)), torch.from_numpy(global_text), domain_text,
                   profiles, n_users)

    def domain_items(self, d: int) -> torch.Tensor:
        return self.domain_items_a if d == 0 else self.domain_items_b

    def domain_text(self, d: int) -> torch.Tensor:
        return self.domain_text_a if d == 0 else self.domain_text_b

    # ---- item representations -------------------------------------------------------
    def item_tables(self) -> TextItemTables:
        """The adapted embeddings (+ ID part) of every item for one forward pass; the
        trainer's scorer computes them once for a whole evaluation."""
        n = self.n_items
        adapted = self.global_adapter(self.global_text)
        ids = self.item_id.weight if self.item_id is not None else torch.zeros_like(adapted)
        pad = adapted.new_zeros(1, self.cfg.dim)
        domain = []
        for d in (0, 1):
            items = self.domain_items(d)
            rows = self.domain_adapters[d](self.domain_text(d)) + ids[items]
            domain.append(adapted.new_zeros(n + 1, self.cfg.dim).index_copy(0, items, rows))
        return TextItemTables(torch.cat([adapted + ids, pad]), (domain[0], domain[1]), adapted)

    # ---- sequence encoding ------------------------------------------------------------
    def encode(self, seq: torch.Tensor, tables: TextItemTables) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Mixed-thread states [B, L, d], and per domain X the X thread's state at the last X
        item up to each position ([B, L, d], zero before the first X item)."""
        mixed = self.mixed_encoder(tables.mixed[seq])
        per_domain = [domain_thread_states(self.domain_encoders[d], tables.domain[d], seq, self.item_domain[seq] == d,
                                           self.n_items) for d in (0, 1)]
        return mixed, per_domain

    def user_vectors(self, seq: torch.Tensor, lengths: torch.Tensor, tables: TextItemTables | None = None,
                     with_mixed: bool = False):
        """[B, 2, d]: the user's vector for target domain A and B after their last item,
        H_mixed + H_X (and, with_mixed, also [B, d]: the mixed thread alone)."""
        tables = tables or self.item_tables()
        mixed, per_domain = self.encode(seq, tables)
        last_mixed = last_states(mixed, lengths)
        out = torch.stack([last_mixed + last_states(per_domain[d], lengths) for d in (0, 1)], dim=1)
        return (out, last_mixed) if with_mixed else out

    def rank_scores(self, seq: torch.Tensor, lengths: torch.Tensor, d: int, tables: TextItemTables) -> torch.Tensor:
        """[B, n_items_of_d] scores of domain d's items, dot products / sqrt(dim) (columns in
        domain_items(d) order)."""
        vectors = self.user_vectors(seq, lengths, tables)[:, d]
        return self.logit_scale * vectors @ tables.mixed[self.domain_items(d)].T

    # ---- training losses --------------------------------------------------------------
    def sample_negatives(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Per domain, `cfg.negatives` distinct items of that domain drawn uniformly, or None
        (full softmax) when that covers the domain. One draw serves every position of a batch."""
        out = []
        for d in (0, 1):
            items = self.domain_items(d)
            k = self.cfg.negatives
            full = k == 0 or k >= len(items)
            out.append(None if full else items[torch.randperm(len(items), device=items.device)[:k]])
        return out[0], out[1]

    def losses(self, inputs: torch.Tensor, labels: torch.Tensor, extra: torch.Tensor,
               negatives: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
               users: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{"ce", "contrastive" (when its weight is > 0), "profile" (with profiles and
        `users`, the rows' users), "total"} of one batch (rows of
        urllm.models.sequences.training_sequences).

        ce: mean over labelled positions of the next-item cross-entropy among the label's
        domain (the label against the batch's shared negatives of that domain, from
        `sample_negatives()` unless given). total = ce + contrastive_weight * contrastive
        + profile_weight * profile.
        """
        tables = self.item_tables()
        mixed, per_domain = self.encode(inputs, tables)
        negatives = self.sample_negatives() if negatives is None else negatives
        terms, count = [], 0
        for target, d, hit in label_groups(labels, extra, self.item_domain):
            states = self.logit_scale * (mixed + per_domain[d])[hit]
            terms.append(self._next_item_loss(states, target[hit], d, tables, negatives[d]))
            count += int(hit.sum())
        out = {"ce": torch.stack(terms).sum() / max(count, 1) if terms else mixed.sum() * 0}
        total = out["ce"]
        if self.cfg.contrastive_weight > 0:
            items = torch.unique(torch.cat([inputs[inputs != self.n_items], labels[labels >= 0], extra[extra >= 0]]))
            if len(items) > CONTRASTIVE_MAX_ITEMS:
                items = items[torch.randperm(len(items), device=items.device)[:CONTRASTIVE_MAX_ITEMS]]
            out["contrastive"] = self.contrastive_loss(items, tables)
            total = total + self.cfg.contrastive_weight * out["contrastive"]
        if self.profile_adapter is not None and users is not None:
            out["profile"] = self.profile_loss(last_states(mixed, (inputs != self.n_items).sum(1)), users)
            total = total + self.cfg.profile_weight * out["profile"]
        out["total"] = total
        return out

    def _next_item_loss(self, states: torch.Tensor, targets: torch.Tensor, d: int, tables: TextItemTables,
                        negatives: torch.Tensor | None) -> torch.Tensor:
        """Summed cross-entropy of `targets` (items of domain d) given `states` [P, d] (already
        multiplied by logit_scale):
        against all of d's items (negatives None), or against the shared `negatives` (a
        negative equal to a position's own target is masked out for that position)."""
        if negatives is None:
            return full_softmax_loss(states, tables.mixed, self.domain_items(d), self.local_column[targets])
        return sampled_softmax_loss(states, tables.mixed, targets, negatives)

    def contrastive_loss(self, items: torch.Tensor, tables: TextItemTables) -> torch.Tensor:
        """Contrastive regularisation of the global adapter between the two domains.

        For distinct items S, z_i = normalize(W a_i) (a_i: the adapter's output for item i,
        W: a linear head back to the text space) and t_j = normalize(global PCA text of j):

            L = mean_{i in S} -log( exp(z_i.t_i / T)
                                    / (exp(z_i.t_i / T) + sum_{j in S, dom(j) != dom(i)} exp(z_i.t_j / T)) )

        Why: the adapter may reshape items for next-item prediction, but each item must stay
        recognisable from its own text and apart from the other domain's items, so the
        shared space of the mixed thread does not blur the two domains together.
        (0 when S holds one domain only: no negatives.)
        """
        z = F.normalize(self.text_head(tables.adapted[items]), dim=-1)
        t = F.normalize(self.global_text[items], dim=-1)
        logits = z @ t.T / self.cfg.temperature
        domain = self.item_domain[items]
        other_item = ~torch.eye(len(items), dtype=torch.bool, device=items.device)
        logits = logits.masked_fill((domain.view(-1, 1) == domain.view(1, -1)) & other_item, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(items), device=items.device))


    def profile_loss(self, states: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Guidance by the hierarchical user profiles (0 with fewer than 2 profiled users).

        For the batch rows whose user has a profile, h_u = the mixed thread's state after
        the row's last item and g_u = normalize(adapter(profile embedding of u)):

            L = mean_u -log( exp(cos(h_u, g_u) / T) / sum_v exp(cos(h_u, g_v) / T) )

        over the profiled users u, v of the batch (T: cfg.temperature). Why: the profile
        summarises in words what the user's whole sequence is about, and the mixed thread
        is the model's global view of that sequence.
        """
        rows = self.profiled[users]
        if int(rows.sum()) < 2:
            return states.sum() * 0
        h = F.normalize(states[rows], dim=-1)
        g = F.normalize(self.profile_adapter(self.profile_table[users[rows]]), dim=-1)
        logits = h @ g.T / self.cfg.temperature
        return F.cross_entropy(logits, torch.arange(len(h), device=h.device))


def train_llm4cdsr(dataset: Dataset, cfg: LLM4CDSRConfig, fit_cfg: FitConfig, text_embeddings: np.ndarray,
                   name: str = "llm4cdsr", profiles: tuple[torch.Tensor, torch.Tensor] | None = None
                   ) -> tuple[LLM4CDSRModel, FitResult]:
    """Build the model from raw item text embeddings [n_items, width] (item-id order) and
    train it with urllm.models.trainer.fit: next-item losses on the train split, model
    selection and early stopping on VALID only; the best epoch's weights are returned.
    `profiles` = (users, embeddings) of profiled training users turns the guidance on."""
    cfg.validate()
    seed_everything(fit_cfg.seed)
    model = LLM4CDSRModel.from_text_embeddings(cfg, dataset.item_domain, text_embeddings, fit_cfg.seed,
                                               profiles, len(dataset.users))
    return model, fit(model, dataset, fit_cfg, name)
