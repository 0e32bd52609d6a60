"""The two-tower model: the item tower, the user tower (history pooled by a masked mean) and the wrappers that give
each tower the ONNX graph's named inputs."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from two_tower_data import Export

IMAGE_PROJECTION = 32



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


class UserTower(nn.Module):
    def __init__(self, feature_mean: np.ndarray, feature_std: np.ndarray, article_embedding: nn.Embedding,
                 article_card: int, dim: int, hidden: int):
        super().__init__()
        self.register_buffer("feature_mean", torch.from_numpy(feature_mean.astype(np.float32)))
        self.register_buffer("feature_scale", torch.from_numpy((1.0 / feature_std).astype(np.float32)))
        self.register_buffer("article_card", torch.tensor(article_card, dtype=torch.int64))
        self.history_embedding = article_embedding
        self.mlp = mlp(len(feature_mean) + article_embedding.embedding_dim, hidden, dim)

    def forward(self, user_features: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        codes = in_range(history, self.article_card)
        mask = (codes > 0).to(self.history_embedding.weight.dtype).unsqueeze(-1)
        pooled = (self.history_embedding(codes) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        x = (user_features - self.feature_mean) * self.feature_scale
        return F.normalize(self.mlp(torch.cat([x, pooled], dim=1)).float(), dim=1)


class TwoTower(nn.Module):
    def __init__(self, data: Export, dim: int, hidden: int, id_dim: int):
        super().__init__()
        train_features = data.features[data.train_idx]
        mean = train_features.mean(axis=0, dtype=np.float64)
        std = train_features.std(axis=0, dtype=np.float64)
        std = np.where(std > 1e-6, std, 1.0)
        # Sparse gradients: a step touches ~2k of ~100k rows, and dense Adam over the whole table was most of a CPU
        # step (SparseAdam, i.e. lazy Adam, updates only the rows a batch used).
        article = nn.Embedding(data.article_card, id_dim, sparse=True)
        nn.init.normal_(article.weight, std=0.05)
        image_dim = 0 if data.image is None else data.image.shape[1]
        self.item = ItemTower(data.cards, data.article_col, article, image_dim, dim, hidden)
        self.user = UserTower(mean, std, article, data.article_card, dim, hidden)


class UserExport(nn.Module):
    def __init__(self, tower: UserTower):
        super().__init__()
        self.tower = tower

    def forward(self, user_features: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return self.tower(user_features, history)


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
