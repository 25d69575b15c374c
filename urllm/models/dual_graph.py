"""The dual-graph sequential model of URLLM stage 1 (C2DSR family, plus URLLM's
item-attribute graph), and SASRec as the same code with the graphs and domain threads off.

Item embeddings are propagated with LightGCN convolutions over the cross-domain graph,
the two domain graphs and the item-attribute graph (urllm/models/graphs.py). Three
CAUSAL transformer encoders read a user's sequence: mixed (both domains interleaved),
A-only and B-only (the domain's items, in order). A user's vector for target domain X at
position p is H_mixed[p] + H_X[p] (paper Eq. 14, H_X taken at the last X item up to p);
it scores the items of X by dot product. Losses: next-item cross-entropy over the
label's domain, an InfoMax term (a bilinear discriminator tells a user's domain
summary paired with their own mixed sequence from one paired with a corrupted copy), and
an InfoNCE alignment between graph and attribute embeddings of the same item.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from urllm.models.config import DualGraphConfig
from urllm.models.encoder import CausalEncoder, domain_thread_states, full_softmax_loss, label_groups, last_states, sampled_softmax_loss
from urllm.models.graphs import Graph, ItemGraphs
from urllm.models.pyg_codegen import generated_code_in_cache
from urllm.models.readout import GraphReadout, window_items

SASREC_SWITCHES = dict(use_graph=False, use_attributes=False, domain_encoders=False, infomax_weight=0.0,
                       align_weight=0.0, readout=False)
ABLATION_SWITCHES = dict(use_graph=False, use_attributes=False, align_weight=0.0, readout=False)


def sasrec_config(**fields) -> DualGraphConfig:
    """SASRec: one causal encoder over plain item embeddings of the mixed sequence (the
    switches win over `fields`; sizes and training knobs are shared)."""
    return dataclasses.replace(DualGraphConfig(**fields), **SASREC_SWITCHES)


def ablation_config(**fields) -> DualGraphConfig:
    """The dual-graph model with the graphs (readout included) and the alignment term off."""
    return dataclasses.replace(DualGraphConfig(**fields), **ABLATION_SWITCHES)


def normalized_adjacency(graph: Graph, n_nodes: int, edge_weight: str) -> torch.Tensor:
    """D^-1/2 A D^-1/2 as a sparse CSR tensor, built once (3x faster than normalising
    the edge list at every step on this CPU)."""
    weight = {"count": graph.weight, "log": 1 + torch.log(graph.weight), "binary": torch.ones_like(graph.weight)}[edge_weight]
    index, weight = gcn_norm(graph.edge_index, weight, n_nodes, add_self_loops=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return to_torch_csr_tensor(index, weight, size=(n_nodes, n_nodes))


def lightgcn(x: torch.Tensor, adjacency: torch.Tensor, layers: int, conv: LGConv) -> torch.Tensor:
    """Mean of the layer outputs 0..layers (layer 0 keeps isolated items' own embedding)."""
    outs = [x]
    for _ in range(layers):
        outs.append(conv(outs[-1], adjacency))
    return torch.stack(outs).mean(0)


@dataclass
class ItemTables:
    mixed: torch.Tensor  # [N+1, d] input/output table of the mixed thread (row N: pad)
    domain: tuple[torch.Tensor, torch.Tensor]  # inputs of the A-only and B-only threads
    graph: torch.Tensor | None  # graph part, for the alignment term
    semantic: torch.Tensor | None  # attribute part, for the alignment term


class DualGraphModel(nn.Module):
    def __init__(self, cfg: DualGraphConfig, item_domain: torch.Tensor, graphs: ItemGraphs | None):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.n_items = len(item_domain)
        self.register_buffer("item_domain", torch.cat([item_domain.long(), torch.tensor([-1])]), persistent=False)
        self.register_buffer("domain_items_a", torch.nonzero(item_domain == 0).flatten(), persistent=False)
        self.register_buffer("domain_items_b", torch.nonzero(item_domain == 1).flatten(), persistent=False)
        for d, name in ((0, "local_a"), (1, "local_b")):  # item id -> column among its domain's items, else -1
            local = torch.full((self.n_items + 1,), -1, dtype=torch.long)
            local[: self.n_items][item_domain == d] = torch.arange(int((item_domain == d).sum()))
            self.register_buffer(name, local, persistent=False)
        self.item_emb = nn.Embedding(self.n_items + 1, cfg.dim, padding_idx=self.n_items)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        with torch.no_grad():
            self.item_emb.weight[self.n_items].zero_()
        with generated_code_in_cache():  # torch-geometric writes LGConv's propagate code on the first build
            self.conv = LGConv(normalize=False)  # adjacencies are normalised once, here
        self.graphs = graphs
        n_words = len(graphs.words) if graphs is not None and cfg.use_attributes else 0
        self.adjacency: dict[str, torch.Tensor] = {}
        if graphs is not None:
            n = self.n_items
            w = cfg.edge_weight
            self.adjacency = {
                "cross": normalized_adjacency(graphs.cross, n, w),
                "a": normalized_adjacency(graphs.domain[0], n, w),
                "b": normalized_adjacency(graphs.domain[1], n, w),
                "attribute": normalized_adjacency(graphs.attribute, n + len(graphs.words), "binary"),
            }
        self.word_emb = nn.Embedding(max(n_words, 1), cfg.dim)
        nn.init.normal_(self.word_emb.weight, std=0.05)
        self.mixed_encoder = CausalEncoder(cfg)
        self.domain_encoder = nn.ModuleList([CausalEncoder(cfg), CausalEncoder(cfg)]) if cfg.domain_encoders else None
        self.discriminator = nn.Bilinear(cfg.dim, cfg.dim, 1)
        use_readout = cfg.readout and graphs is not None
        self.readout = GraphReadout(graphs.cross, self.n_items, cfg.readout_window, cfg.readout_neighbors) if use_readout else None

    def domain_items(self, d: int) -> torch.Tensor:
        return self.domain_items_a if d == 0 else self.domain_items_b

    def local_column(self, d: int) -> torch.Tensor:
        return self.local_a if d == 0 else self.local_b

    # ---- item representations -------------------------------------------------------
    def item_tables(self) -> ItemTables:
        cfg, e = self.cfg, self.item_emb.weight
        n = self.n_items
        use_graph = cfg.use_graph and self.graphs is not None
        adj = self.adjacency
        graph = lightgcn(e[:n], adj["cross"], cfg.gnn_layers, self.conv) if use_graph else e[:n]
        if use_graph and cfg.domain_encoders:
            domain = [lightgcn(e[:n], adj[k], cfg.gnn_layers, self.conv) for k in ("a", "b")]
        else:
            domain = [e[:n], e[:n]]
        semantic = None
        if cfg.use_attributes and self.graphs is not None and len(self.graphs.words):
            nodes = torch.cat([e[:n], self.word_emb.weight])
            semantic = lightgcn(nodes, adj["attribute"], max(cfg.gnn_layers, 1), self.conv)[:n]
        pad = e[n:]  # zero row (padding_idx)

        def with_pad(t):
            return torch.cat([t if semantic is None else t + semantic, pad])

        return ItemTables(with_pad(graph), (with_pad(domain[0]), with_pad(domain[1])), graph, semantic)

    # ---- sequence encoding ------------------------------------------------------------
    def encode(self, seq: torch.Tensor, tables: ItemTables) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Hidden states [B, L, d] of the mixed thread, and per domain X the X thread's
        state at the last X item up to each position ([B, L, d], zero before any X item)."""
        mixed = self.mixed_encoder(tables.mixed[seq])
        per_domain: list[torch.Tensor | None] = [None, None]
        if self.domain_encoder is None:
            return mixed, per_domain
        dom = self.item_domain[seq]
        for d in (0, 1):
            per_domain[d] = domain_thread_states(self.domain_encoder[d], tables.domain[d], seq, dom == d, self.n_items)
        return mixed, per_domain

    def user_states(self, mixed: torch.Tensor, per_domain: list, d: int) -> torch.Tensor:
        return mixed if per_domain[d] is None else mixed + per_domain[d]

    def user_vectors(
        self, seq: torch.Tensor, lengths: torch.Tensor, tables: ItemTables | None = None, with_mixed: bool = False
    ):
        """[B, 2, d]: the user's vector for target domain A and B after their last item
        (and, with_mixed, also [B, d]: the mixed thread alone, for the retrieval ablation)."""
        tables = tables or self.item_tables()
        mixed, per_domain = self.encode(seq, tables)
        out = torch.stack([last_states(self.user_states(mixed, per_domain, d), lengths) for d in (0, 1)], dim=1)
        return (out, last_states(mixed, lengths)) if with_mixed else out

    def score_domain(self, vectors: torch.Tensor, d: int, tables: ItemTables) -> torch.Tensor:
        """[B, n_items_of_d] dot-product scores of domain d's items (columns in domain_items(d) order)."""
        return vectors @ tables.mixed[self.domain_items(d)].T

    def rank_scores(self, seq: torch.Tensor, lengths: torch.Tensor, d: int, tables: ItemTables) -> torch.Tensor:
        """[B, n_items_of_d] ranking scores after each history: the user vector's dot
        products plus the graph readout from the last items."""
        scores = self.score_domain(self.user_vectors(seq, lengths, tables)[:, d], d, tables)
        if self.readout is not None:
            scores = scores + self.readout_scores(seq, lengths, d)
        return scores

    def readout_scores(self, seq: torch.Tensor, lengths: torch.Tensor, d: int) -> torch.Tensor:
        """[B, n_items_of_d]: the graph readout's part of `rank_scores` (0 for an empty history)."""
        recent = last_states(window_items(seq, self.cfg.readout_window, self.n_items), lengths)
        recent = torch.where((lengths > 0).view(-1, 1), recent, self.n_items)
        return self.readout.over_columns(recent, None, self.local_column(d), len(self.domain_items(d)))

    # ---- training losses --------------------------------------------------------------
    def losses(self, inputs: torch.Tensor, labels: torch.Tensor, extra: torch.Tensor) -> dict[str, torch.Tensor]:
        tables = self.item_tables()
        mixed, per_domain = self.encode(inputs, tables)
        recent_all = window_items(inputs, self.cfg.readout_window, self.n_items) if self.readout is not None else None
        # The user's own transitions (input -> label), subtracted from the readout's counts.
        pair_x, pair_y = torch.cat([inputs, inputs], 1), torch.cat([labels, extra], 1)
        ce_terms, count = [], 0
        for target, d, hit in label_groups(labels, extra, self.item_domain):
            states = self.user_states(mixed, per_domain, d)[hit]
            context = None
            if recent_all is not None:
                recent, rows = recent_all[hit], hit.nonzero()[:, 0]
                context = (recent, self.readout.own_counts(recent, pair_x[rows], pair_y[rows]))
            ce_terms.append(self._next_item_loss(states, target[hit], d, tables, context))
            count += int(hit.sum())
        out = {"ce": torch.stack(ce_terms).sum() / max(count, 1)}
        lengths = (inputs != self.n_items).sum(1)
        if self.cfg.infomax_weight > 0 and self.domain_encoder is not None:
            out["infomax"] = self._infomax(inputs, lengths, mixed, per_domain, tables)
        if self.cfg.align_weight > 0 and tables.semantic is not None:
            out["align"] = self._alignment(inputs, tables)
        cfg = self.cfg
        out["total"] = out["ce"] + cfg.infomax_weight * out.get("infomax", 0.0) + cfg.align_weight * out.get("align", 0.0)
        return out

    def _next_item_loss(self, states, targets, d, tables, context) -> torch.Tensor:
        """Summed cross-entropy of the targets among domain d's items (all of them, or the
        target plus `negatives` uniform samples shared by this group of positions).
        `context` = (recent items, own pair counts) for the graph readout, or None."""
        items, local = self.domain_items(d), self.local_column(d)
        if not self.cfg.negatives or self.cfg.negatives >= len(items):
            bonus = self.readout.over_columns(*context, local, len(items)) if context is not None else None
            return full_softmax_loss(states, tables.mixed, items, local[targets], bonus)
        # Drawn with replacement, repeats dropped (fewer than `negatives` distinct items):
        # LLM4CDSR draws without, but changing this draw would change every seeded stage-1 result.
        negatives = torch.unique(items[torch.randint(len(items), (self.cfg.negatives,), device=states.device)])
        bonus = None
        if context is not None:
            column = torch.full_like(local, -1)
            column[negatives] = torch.arange(len(negatives), device=states.device)
            bonus = (self.readout.at_items(*context, targets), self.readout.over_columns(*context, column, len(negatives)))
        return sampled_softmax_loss(states, tables.mixed, targets, negatives, bonus)

    def corrupt(self, seq: torch.Tensor) -> torch.Tensor:
        """Replace a share of the items by random items of the same domain."""
        dom = self.item_domain[seq]
        out = seq.clone()
        for d in (0, 1):
            items = self.domain_items(d)
            swap = (dom == d) & (torch.rand(seq.shape, device=seq.device) < self.cfg.corrupt_prob)
            out[swap] = items[torch.randint(len(items), (int(swap.sum()),), device=seq.device)]
        return out

    def _infomax(self, inputs, lengths, mixed, per_domain, tables) -> torch.Tensor:
        neg_mixed = self.mixed_encoder(tables.mixed[self.corrupt(inputs)])
        pos_summary, neg_summary = last_states(mixed, lengths), last_states(neg_mixed, lengths)
        terms = []
        for d in (0, 1):
            summary = last_states(per_domain[d], lengths)
            has = summary.abs().sum(-1) > 0
            if not has.any():
                continue
            pos = self.discriminator(summary[has], pos_summary[has]).squeeze(-1)
            neg = self.discriminator(summary[has], neg_summary[has]).squeeze(-1)
            terms.append(
                F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
            )
        return torch.stack(terms).mean() if terms else mixed.sum() * 0

    def _alignment(self, inputs, tables) -> torch.Tensor:
        items = torch.unique(inputs[inputs != self.n_items])
        if len(items) > 1024:
            items = items[torch.randperm(len(items), device=items.device)[:1024]]
        g = F.normalize(tables.graph[items], dim=-1)
        s = F.normalize(tables.semantic[items], dim=-1)
        logits = g @ s.T / self.cfg.align_temperature
        target = torch.arange(len(items), device=items.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
