"""Label-smoothed CE and soft batch-hard triplet against direct formulas (values and gradients)."""
import math

import pytest
import torch

from dualref.losses.softmax import CrossEntropyLabelSmooth
from dualref.losses.triplet import SoftTripletLoss, euclidean_dist, soft_triplet_loss


def test_label_smooth_ce_by_hand():
    # Two samples, three classes, eps 0.1: q = 0.9 onehot + 0.1/3.
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 0])
    loss = CrossEntropyLabelSmooth(3, epsilon=0.1)(logits, targets)
    expected = 0.0
    grad = torch.zeros(2, 3, dtype=torch.float64)
    for n, row in enumerate(logits.detach().tolist()):
        lse = math.log(sum(math.exp(v) for v in row))
        q = [0.1 / 3 + (0.9 if c == targets[n] else 0.0) for c in range(3)]
        expected += -sum(q[c] * (row[c] - lse) for c in range(3)) / 2
        for c in range(3):  # d/dz of -sum q log softmax = softmax - q
            grad[n, c] = (math.exp(row[c] - lse) - q[c]) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert torch.allclose(logits.grad, grad, atol=1e-12)


def test_label_smooth_ce_eps0_is_cross_entropy_and_rejects_wide_logits():
    torch.manual_seed(0)
    logits = torch.randn(5, 4)
    targets = torch.tensor([0, 3, 1, 1, 2])
    ours = CrossEntropyLabelSmooth(4, epsilon=0.0)(logits, targets)
    assert torch.allclose(ours, torch.nn.functional.cross_entropy(logits, targets))
    with pytest.raises(ValueError, match="slice"):
        CrossEntropyLabelSmooth(3)(logits, targets)


def loop_triplet(features, labels, margin=0.0):
    """Oracle: explicit per-anchor loop over sqrt(max(|a-b|^2, 1e-12))."""
    n = features.shape[0]
    losses, correct = [], 0
    for a in range(n):
        def d(b):
            return torch.clamp(((features[a] - features[b]) ** 2).sum(), min=1e-12).sqrt()
        pos = [d(b) for b in range(n) if labels[b] == labels[a]]
        neg = [d(b) for b in range(n) if labels[b] != labels[a]]
        if not neg:
            losses.append(features.sum() * 0.0)
            correct += 1
            continue
        ap, an = torch.stack(pos).max(), torch.stack(neg).min()
        log_p = torch.log_softmax(torch.stack([ap, an]), 0)  # the authors' form
        losses.append(-margin * log_p[0] - (1 - margin) * log_p[1])
        correct += int(an > ap)
    return torch.stack(losses).mean(), correct / n


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_soft_triplet_matches_loop_values_and_gradients(margin):
    torch.manual_seed(0)
    base = torch.randn(8, 5, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])  # label 3 has no other positive
    x1 = base.clone().requires_grad_(True)
    out = soft_triplet_loss(x1, labels, margin)
    out.loss.backward()
    assert torch.equal(SoftTripletLoss(margin)(x1, labels), out.loss)
    x2 = base.clone().requires_grad_(True)
    ref, prec = loop_triplet(x2, labels, margin)
    ref.backward()
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-10)
    assert out.precision.item() == pytest.approx(prec)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)


def test_soft_triplet_margin0_equals_softmargin_of_authors():
    # The authors' margin-0 form: -log_softmax([d_ap, d_an])[1].
    torch.manual_seed(1)
    x = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    dist = euclidean_dist(x, x)
    same = labels[:, None] == labels[None, :]
    ap = (dist - 1e7 * (~same)).max(1).values
    an = (dist + 1e7 * same).min(1).values
    authors = (-torch.log_softmax(torch.stack([ap, an], 1), 1)[:, 1]).mean()
    assert torch.allclose(soft_triplet_loss(x, labels).loss, authors, atol=1e-6)


def test_soft_triplet_degenerate_batches():
    x = torch.randn(4, 3, requires_grad=True)
    one_label = soft_triplet_loss(x, torch.zeros(4, dtype=torch.long))
    assert one_label.loss.item() == 0.0 and one_label.precision.item() == 1.0
    one_label.loss.backward()
    assert torch.equal(x.grad, torch.zeros(4, 3))
    # All singletons: d_ap is the self distance sqrt(1e-12) = 1e-6.
    y = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    out = soft_triplet_loss(y, torch.tensor([0, 1]))
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(1e-6 - 5.0)), rel=1e-5)
    assert out.precision.item() == 1.0


def test_euclidean_dist_clamps_zero_distance():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [4.0, 6.0]], requires_grad=True)
    d = euclidean_dist(x, x)
    assert torch.allclose(d, torch.tensor([[1e-6, 1e-6, 5.0], [1e-6, 1e-6, 5.0], [5.0, 5.0, 1e-6]]), atol=1e-6)
    d.sum().backward()
    assert torch.isfinite(x.grad).all()
