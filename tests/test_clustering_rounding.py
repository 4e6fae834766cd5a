"""The float32 building blocks of the Jaccard distance round as the reference's dense torch code does.

Each test compares one sparse step with the dense torch expression the
reference evaluates, bit for bit: a product block against the full product,
row sums against ``torch.sum`` of each row alone, and the query expansion
against ``V[ranks].view(n, k2, n).sum(1) / k2``.
"""
import pytest
import torch

from dualref.clustering.jaccard import gram
from dualref.clustering.kreciprocal import (SparseRows, _crow_from_counts, dense_sum_lanes, lane_sum,
                                            query_expansion, segment_sums)


def test_gram_gives_the_full_products_numbers():
    g = torch.Generator().manual_seed(0)
    for dim in (8, 64, 2048):
        x = torch.nn.functional.normalize(torch.randn(300, dim, generator=g), dim=1)
        full = x @ x.T
        assert torch.equal(full, full.T)  # the upper tiles stand for the lower ones
        for rows, cols in [(1, 1), (1, 40), (3, 7), (8, 8), (11, 300), (16, 16), (50, 2), (300, 300)]:
            r = torch.randperm(300, generator=g)[:rows]
            c = torch.randperm(300, generator=g)[:cols]
            assert torch.equal(gram(x[r], x[c]), full[r][:, c]), (dim, rows, cols)


def test_segment_sums_round_like_torch_sum_of_each_row():
    g = torch.Generator().manual_seed(1)
    lens = torch.randint(0, 130, (400,), generator=g)
    lens[:5] = torch.tensor([0, 1, 2, 17, 64])
    crow = _crow_from_counts(lens)
    val = torch.rand(int(lens.sum()), generator=g) * torch.pow(2.0, -torch.randint(0, 20, (int(lens.sum()),),
                                                                                     generator=g).float())
    got = segment_sums(crow, val)
    want = torch.stack([val[int(crow[i]):int(crow[i + 1])].sum() for i in range(400)])
    assert torch.equal(got, want)


def random_sparse(n, density, g):
    dense = torch.rand(n, n, generator=g) * (torch.rand(n, n, generator=g) < density)
    dense[torch.arange(n), torch.arange(n)] += 0.5  # no empty row
    dense /= dense.sum(1, keepdim=True)
    nz = dense.nonzero()
    counts = torch.bincount(nz[:, 0], minlength=n)
    return dense, SparseRows(_crow_from_counts(counts), nz[:, 1], dense[nz[:, 0], nz[:, 1]], n)


@pytest.mark.parametrize("n", [5, 37, 100, 333])
@pytest.mark.parametrize("k2", [2, 5, 6, 8])
def test_query_expansion_adds_like_the_dense_sum(n, k2):
    g = torch.Generator().manual_seed(n * 10 + k2)
    dense, v = random_sparse(n, 0.2, g)
    ranks = torch.stack([torch.randperm(n, generator=g) for _ in range(n)])
    k = min(k2, n)
    want = dense[ranks[:, :k].reshape(-1)].view(n, k, n).sum(1) / k
    got = query_expansion(v, ranks, k2)
    out = torch.zeros(n, n)
    out[got.row_ids(), got.col] = got.val
    assert torch.equal(out, want)


def test_dense_sum_lanes_finds_the_columns_summed_in_lanes():
    # a column is in lanes when torch's dense sum equals lane_sum (and not term after term)
    g = torch.Generator().manual_seed(5)
    for n, k in [(5, 6), (37, 6), (400, 6), (1000, 5), (64, 3)]:
        lanes = dense_sum_lanes(n, k)
        t = torch.rand(32, k, n, generator=g) * torch.pow(2.0, -torch.randint(0, 13, (32, k, n), generator=g).float())
        dense = t.sum(1)
        terms = t.permute(0, 2, 1)
        seq = terms[..., 0].clone()
        for i in range(1, k):
            seq += terms[..., i]
        assert torch.equal(dense[:, lanes], lane_sum(terms)[:, lanes])
        assert torch.equal(dense[:, ~lanes], seq[:, ~lanes])
    assert not dense_sum_lanes(100, 1).any()
