"""The two-tower model: the item tower and the two user towers (`--user-tower mean`: the history pooled by a masked
mean; `sasrec`: a small causal transformer over the history), sharing the article ID table, and the wrappers that
give the item tower the ONNX graph's named inputs (the user towers' forward arguments are theirs already)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from two_tower_data import Export

IMAGE_PROJECTION = 32
USER_TOWERS = ("mean", "sasrec")
SASREC_LAYERS = 2
SASREC_HEADS = 2
# Days-ago buckets of the sequential tower, by their lower bounds: bucket k (k >= 1) holds ages in
# [AGE_BUCKETS[k-1], AGE_BUCKETS[k]), bucket 0 the same day (and anything below 0). Buckets rather than a linear map of
# log1p(days): each range learns its own vector, and huge ages (700 days, 2^31) need no clamp.
AGE_BUCKETS = (1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365, 540, 730)


def column_dim(card: int) -> int:
    """Embedding width of a non-ID item column: 1.6 * card^0.56 (fastai's rule of thumb) kept within 8..16."""
    return int(max(8, min(16, round(1.6 * card ** 0.56))))


def in_range(codes: torch.Tensor, cards: torch.Tensor) -> torch.Tensor:
    """Codes outside 0..card-1 become 0 (unknown), inside the graph so ONNX does it too."""
    return torch.where((codes >= 0) & (codes < cards), codes, torch.zeros_like(codes))


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class ItemTower(nn.Module):
    def __init__(self, cards: list[int], article_col: int, article_embedding: nn.Embedding, image_dim: int,
                 dim: int, hidden: int):
        super().__init__()
        self.register_buffer("cards", torch.tensor(cards, dtype=torch.int64))
        self.embeddings = nn.ModuleList(
            article_embedding if k == article_col else nn.Embedding(card, column_dim(card))
            for k, card in enumerate(cards))
        width = sum(e.embedding_dim for e in self.embeddings)
        self.image = nn.Linear(image_dim, IMAGE_PROJECTION) if image_dim else None
        self.mlp = mlp(width + (IMAGE_PROJECTION if image_dim else 0), hidden, dim)

    def forward(self, item_codes: torch.Tensor, image_vector: torch.Tensor | None = None) -> torch.Tensor:
        codes = in_range(item_codes, self.cards)
        parts = [emb(codes[:, k]) for k, emb in enumerate(self.embeddings)]
        if self.image is not None:
            parts.append(self.image(image_vector))
        return F.normalize(self.mlp(torch.cat(parts, dim=1)).float(), dim=1)


class UserOutput(nn.Module):
    """The user tower's output stage, whatever encodes the history: the user features standardised with the training
    samples' mean and deviation (constants in the graph), concatenated with the history's vector, then an MLP to D,
    L2-normalised."""

    def __init__(self, feature_mean: np.ndarray, feature_std: np.ndarray, history_dim: int, dim: int, hidden: int):
        super().__init__()
        self.register_buffer("feature_mean", torch.from_numpy(feature_mean.astype(np.float32)))
        self.register_buffer("feature_scale", torch.from_numpy((1.0 / feature_std).astype(np.float32)))
        self.mlp = mlp(len(feature_mean) + history_dim, hidden, dim)

    def forward(self, user_features: torch.Tensor, history_vector: torch.Tensor) -> torch.Tensor:
        x = (user_features - self.feature_mean) * self.feature_scale
        return F.normalize(self.mlp(torch.cat([x, history_vector], dim=1)).float(), dim=1)


class MeanUserTower(nn.Module):
    """The history as the mean of its `article` embeddings over the non-zero codes (all padding: zeros). Its forward
    arguments are the ONNX graph's inputs."""

    inputs = ("user_features", "history")

    def __init__(self, feature_mean: np.ndarray, feature_std: np.ndarray, article_embedding: nn.Embedding,
                 article_card: int, dim: int, hidden: int):
        super().__init__()
        self.register_buffer("article_card", torch.tensor(article_card, dtype=torch.int64))
        self.history_embedding = article_embedding
        self.output = UserOutput(feature_mean, feature_std, article_embedding.embedding_dim, dim, hidden)

    def forward(self, user_features: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        codes = in_range(history, self.article_card)
        mask = (codes > 0).to(self.history_embedding.weight.dtype).unsqueeze(-1)
        pooled = (self.history_embedding(codes) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.output(user_features, pooled)


class SelfAttentionBlock(nn.Module):
    """A pre-LN transformer block: x + attention(LN(x)), then x + feed-forward(LN(x)). The attention is written out
    (matmuls and a softmax) instead of nn.MultiheadAttention, whose fused paths give NaN for a row with every key
    blocked: here the scores are float32 and a blocked pair gets a large finite negative, so such a row (a padding
    position, whose output nothing reads) averages instead."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.scale = (width // heads) ** -0.5
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.attention_out = nn.Linear(width, width)
        self.feed_forward_norm = nn.LayerNorm(width)
        # 2x wide: between SASRec's 1x and BERT's 4x, whose feed-forward would be most of the tower's work.
        self.feed_forward = nn.Sequential(nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        """x (batch, L, width); blocked (batch, 1, L, L), True where a position may not attend to a key."""
        batch, length, width = x.shape
        qkv = self.qkv(self.attention_norm(x)).reshape(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, L, width / heads)
        scores = (q @ k.transpose(-1, -2)).float() * self.scale
        weights = torch.softmax(scores.masked_fill(blocked, -1e9), dim=-1).to(v.dtype)
        attended = (weights @ v).transpose(1, 2).reshape(batch, length, width)
        x = x + self.dropout(self.attention_out(attended))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class SasRecUserTower(nn.Module):
    """The history through a small causal transformer (SASRec-style): each entry is its `article` embedding (the item
    tower's ID table, shared) + its product type's embedding (looked up from the article code inside the graph, so
    the engine feeds article codes only) + a learned position embedding + the embedding of its days-ago bucket.
    Padding (code 0, and codes out of range) is masked as a key. The history's vector is the newest real entry's
    final hidden state: under the causal mask it is the one position that has seen the whole history (the
    prediction SASRec makes), where a masked mean would mix in summaries of shorter prefixes. A history with no
    real entry gets a learned "no history" vector instead. Its forward arguments are the ONNX graph's inputs."""

    inputs = ("user_features", "history", "history_age")

    def __init__(self, feature_mean: np.ndarray, feature_std: np.ndarray, article_embedding: nn.Embedding,
                 article_types: np.ndarray, history_len: int, dim: int, hidden: int, dropout: float):
        super().__init__()
        width = article_embedding.embedding_dim
        self.register_buffer("article_card", torch.tensor(len(article_types), dtype=torch.int64))
        self.register_buffer("article_types", torch.from_numpy(article_types.astype(np.int64)))
        self.register_buffer("age_bounds", torch.tensor(AGE_BUCKETS, dtype=torch.float32))
        self.register_buffer("causal", torch.ones(history_len, history_len, dtype=torch.bool).triu(1))
        self.register_buffer("positions", torch.arange(1, history_len + 1))
        self.history_embedding = article_embedding
        self.type_embedding = nn.Embedding(int(article_types.max()) + 1, width)
        self.age_embedding = nn.Embedding(len(AGE_BUCKETS) + 1, width)
        self.position_embedding = nn.Parameter(torch.empty(history_len, width))
        self.no_history = nn.Parameter(torch.empty(width))
        for w in (self.type_embedding.weight, self.age_embedding.weight, self.position_embedding, self.no_history):
            nn.init.normal_(w, std=0.05)  # the scale of the article table's
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SelfAttentionBlock(width, SASREC_HEADS, dropout) for _ in range(SASREC_LAYERS))
        self.final_norm = nn.LayerNorm(width)
        self.output = UserOutput(feature_mean, feature_std, width, dim, hidden)

    def forward(self, user_features: torch.Tensor, history: torch.Tensor, history_age: torch.Tensor) -> torch.Tensor:
        codes = in_range(history, self.article_card)
        padding = codes == 0
        # The bucket is the number of bounds at or below the age: negative and NaN ages land in bucket 0, any age
        # from the last bound on (700, 1e9, inf) in the last; no clamp needed.
        age = (history_age.unsqueeze(-1) >= self.age_bounds).sum(dim=-1)
        x = (self.history_embedding(codes) + self.type_embedding(self.article_types[codes])
             + self.position_embedding + self.age_embedding(age))
        x = self.dropout(x)
        blocked = self.causal | padding[:, None, None, :]
        for block in self.blocks:
            x = block(x, blocked)
        newest = ((~padding) * self.positions).amax(dim=1, keepdim=True)  # its position, 1-based; 0 = none
        pick = (self.positions == newest).to(x.dtype).unsqueeze(-1)
        pooled = self.final_norm((x * pick).sum(dim=1))
        return self.output(user_features, torch.where(newest > 0, pooled, self.no_history))


class TwoTower(nn.Module):
    def __init__(self, data: Export, dim: int, hidden: int, id_dim: int, user_tower: str = "mean",
                 sparse_ids: bool = True, dropout: float = 0.0):
        super().__init__()
        train_features = data.features[data.train_idx]
        mean = train_features.mean(axis=0, dtype=np.float64)
        std = train_features.std(axis=0, dtype=np.float64)
        std = np.where(std > 1e-6, std, 1.0)
        # Sparse gradients on CPU: a step touches ~2k of ~100k rows, and dense Adam over the whole table was most of
        # a CPU step (SparseAdam, i.e. lazy Adam, updates only the rows a batch used). On a GPU the dense update is
        # one fused kernel, and the sparse one synchronises with the host every step.
        article = nn.Embedding(data.article_card, id_dim, sparse=sparse_ids)
        nn.init.normal_(article.weight, std=0.05)
        image_dim = 0 if data.image is None else data.image.shape[1]
        self.item = ItemTower(data.cards, data.article_col, article, image_dim, dim, hidden)
        if user_tower == "sasrec":
            self.user = SasRecUserTower(mean, std, article, data.article_types(), data.history_len, dim, hidden,
                                        dropout)
        else:
            self.user = MeanUserTower(mean, std, article, data.article_card, dim, hidden)


class ItemExport(nn.Module):
    def __init__(self, tower: ItemTower):
        super().__init__()
        self.tower = tower

    def forward(self, item_codes: torch.Tensor) -> torch.Tensor:
        return self.tower(item_codes)


class ItemImageExport(nn.Module):
    def __init__(self, tower: ItemTower):
        super().__init__()
        self.tower = tower

    def forward(self, item_codes: torch.Tensor, image_vector: torch.Tensor) -> torch.Tensor:
        return self.tower(item_codes, image_vector)
