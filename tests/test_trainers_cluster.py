"""ClusterTrainer: the loss composition of every ablation, and learning."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dualref.losses.softmax import CrossEntropyLabelSmooth
from dualref.losses.memory import SpreadOutMemory
from dualref.losses.spread import SpreadLoss
from dualref.losses.triplet import SoftTripletLoss
from dualref.trainers import ClusterTrainer, LossWeights

N, D, C = 24, 8, 6


class ToyModel(nn.Module):
    """Linear embedding + classifier with the re-ID model's train-mode output."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(D, D)
        self.classifier = nn.Linear(D, C + 3, bias=False)  # extra unused rows, as N > C

    def forward(self, x):
        f = self.embed(x)
        return F.normalize(f, dim=1), self.classifier(f)


def _batch(gen):
    index = torch.randperm(N, generator=gen)[:8]
    images = torch.randn(8, D, generator=gen)
    labels = torch.arange(8) % 4
    return images, ["p"] * 8, labels, torch.zeros(8, dtype=torch.long), index


@pytest.mark.parametrize("alpha,mu", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.1), (0.5, 0.1), (1.0, 0.3)])
def test_loss_is_the_papers_expression(alpha, mu):
    gen = torch.Generator().manual_seed(0)
    model = ToyModel()
    refined = torch.randint(0, C, (N,), generator=gen)
    spread = SpreadLoss(D, N, init_memory=torch.randn(N, D, generator=gen), knn=3)
    lmd = 0.7
    trainer = ClusterTrainer(model, C, LossWeights(alpha=alpha, lmd=lmd),
                             refined_labels=refined, terms=[SpreadOutMemory(spread, mu)],
                             device=torch.device("cpu"), verbose=False)
    images, _, labels, _, index = batch = _batch(gen)
    terms = trainer.compute_losses(batch)

    f, logits = model(images)
    p = logits[:, :C]
    ce, tri = CrossEntropyLabelSmooth(C), SoftTripletLoss(0.0)
    y_ref = refined[index]
    expected = ((1 - alpha) * (lmd * ce(p, labels) + tri(f, labels))
                + alpha * (lmd * ce(p, y_ref) + tri(f, y_ref))
                + mu * spread(f, index))
    torch.testing.assert_close(terms["loss"], expected)
    assert ("loss_ce_refined" in terms) == (alpha > 0)
    assert ("loss_spread" in terms) == (mu > 0)


def test_refined_terms_need_refined_labels():
    with pytest.raises(ValueError):
        ClusterTrainer(ToyModel(), C, LossWeights(alpha=0.5), device=torch.device("cpu"))


class _Batches:
    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.centers = torch.randn(4, D, generator=self.gen) * 3

    def next(self):
        labels = torch.arange(16) % 4
        images = self.centers[labels] + torch.randn(16, D, generator=self.gen)
        return images, [""] * 16, labels, torch.zeros(16, dtype=torch.long), torch.arange(16)


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = ToyModel()
    trainer = ClusterTrainer(model, C, LossWeights(lmd=0.5), device=torch.device("cpu"),
                             verbose=False, print_freq=1000)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = _Batches(1)
    first = trainer.train_epoch(0, batches, optimizer, iters=5)["loss"]
    for epoch in range(1, 6):
        last = trainer.train_epoch(epoch, batches, optimizer, iters=5)["loss"]
    assert last < 0.6 * first


def test_label_smoothing_zero_is_plain_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    model = ToyModel()
    trainer = ClusterTrainer(model, C, LossWeights(), label_smoothing=0.0,
                             device=torch.device("cpu"), verbose=False)
    images, _, labels, _, _ = batch = _batch(gen)
    terms = trainer.compute_losses(batch)
    _, logits = model(images)
    torch.testing.assert_close(terms["loss_ce"], torch.nn.functional.cross_entropy(logits[:, :C], labels))
