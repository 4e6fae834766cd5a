"""Sparse k-reciprocal Jaccard distance against a dense float64 transcription of the definition."""
import numpy as np
import pytest
import torch

from dualref.clustering.dbscan import eps_from_rho
from dualref.clustering.jaccard import compute_jaccard_dist, source_term
from dualref.clustering.kreciprocal import smallest_k


def reciprocal(rank, i, k):
    fwd = rank[i, :k + 1]
    return [j for j in fwd if i in rank[j, :k + 1]]


def oracle_jaccard(feats, k1=20, k2=6, lam=0.0, source=None):
    """Dense definition (SPEC Stage 2 step 2), float64, numpy loops, stable argsort."""
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    n = len(x)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # = 2 - 2cos, exact 0 for duplicates
    top = d.max(1, keepdims=True)
    d = d / np.where(top > 0, top, 1)
    rank = np.argsort(d, axis=1, kind="stable")
    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        base = reciprocal(rank, i, k1)
        members = list(base)
        for j in base:
            cand = reciprocal(rank, j, half)
            if len(set(cand) & set(base)) > 2 / 3 * len(cand):
                members += cand
        members = np.unique(np.array(members, dtype=int))
        w = np.exp(-d[i, members])
        v[i, members] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    out = np.ones((n, n))
    for i in range(n):
        for j in range(n):
            lo, hi = np.minimum(v[i], v[j]).sum(), np.maximum(v[i], v[j]).sum()
            if lo > 0:
                out[i, j] = max(0.0, 1 - lo / hi)
    if lam > 0:
        s = source / np.linalg.norm(source, axis=1, keepdims=True)
        t = (1 - np.exp(-((x[:, None, :] - s[None, :, :]) ** 2).sum(-1))).min(1)
        t = t / t.max()
        out = (1 - lam) * out + lam * (t[:, None] + t[None, :])
    return out, v


def clustered(n, dim=16, ids=None, noise=0.6, seed=0):
    rng = np.random.default_rng(seed)
    ids = ids or max(1, n // 17)
    centres = rng.normal(size=(ids, dim))
    return centres[rng.integers(0, ids, n)] + noise * rng.normal(size=(n, dim))


def check(feats, **kw):
    lam = kw.get("lambda_value", 0.0)
    want, v = oracle_jaccard(feats, kw.get("k1", 20), kw.get("k2", 6), lam, kw.get("source_features"))
    got = compute_jaccard_dist(torch.tensor(feats, dtype=torch.float32), **kw)
    assert got.shape == want.shape and got.dtype == np.float32
    assert got.has_canonical_format
    dense = got.toarray()
    stored = np.zeros(want.shape, dtype=bool)
    stored[np.repeat(np.arange(len(want)), np.diff(got.indptr)), got.indices] = True
    overlap = (v @ v.T) > 0  # shared support <=> Jaccard distance < 1
    np.testing.assert_array_equal(stored, overlap)
    np.testing.assert_allclose(dense[stored], want[stored], atol=1e-5)
    if lam == 0:
        np.testing.assert_array_equal(want[~stored], 1.0)
        np.testing.assert_array_equal(stored, want < 1)
    return got, want


@pytest.mark.parametrize("k2", [1, 6])
def test_matches_dense_definition_on_clustered_features(k2):
    got, want = check(clustered(300, seed=k2), k2=k2)
    assert 0.01 < got.nnz / 300 ** 2 < 0.9  # really sparse, really non-trivial
    # the definition is symmetric: the sum of minima and the sum of maxima are
    assert abs(got - got.T).max() == 0
    np.testing.assert_array_equal(got.diagonal(), 0.0)


def test_many_row_blocks_match_the_definition_and_one_block(monkeypatch):
    """Small blocks: the sum of minima runs in many row blocks, each with its own column offset."""
    from dualref.clustering import kreciprocal
    feats = clustered(300, seed=5)
    whole = compute_jaccard_dist(torch.tensor(feats, dtype=torch.float32))
    monkeypatch.setattr(kreciprocal, "BLOCK_ELEMS", 300 * 7)  # 7 rows a block, 43 blocks
    got, _ = check(feats)
    assert (got != whole).nnz == 0 and np.array_equal(got.indices, whole.indices)


def test_mixing_with_source_term():
    feats = clustered(200, seed=3)
    source = clustered(50, seed=4) + 0.5
    got, want = check(feats, lambda_value=0.3, source_features=source)
    t = source_term(torch.tensor(feats), torch.tensor(source)).numpy()
    assert t.max() == pytest.approx(1.0) and t.min() >= 0
    # missing pairs are exactly the ones at Jaccard distance 1
    missing = got.toarray() == 0
    missing[got.nonzero()] = False
    np.testing.assert_allclose(want[missing], 0.7 + 0.3 * np.add.outer(t, t)[missing], atol=1e-5)
    with pytest.raises(ValueError):
        compute_jaccard_dist(feats, lambda_value=0.3)


def test_exact_duplicates_tie_by_index():
    base = clustered(120, seed=5)
    feats = np.concatenate([base, base[:30], base[:5], base[:5], base[:5]])  # groups up to 4
    feats[150:] = feats[0]  # 15 copies of row 0: a tie group straddling k1/2 and k2
    got, want = check(feats, k1=12, k2=6)
    # identical rows: distance 0 up to the reference's float32 rounding residue
    block = got.toarray()[np.ix_(range(150, 165), range(150, 165))]
    assert (block <= 1e-6).all() and (np.diag(block) == 0).all()
    assert (got.data == 0).sum() > len(feats)  # explicit zeros kept beyond the diagonal


def test_many_identical_rows():
    feats = np.ones((30, 4))
    feats[25:] = -1.0
    check(feats, k1=20, k2=6)


@pytest.mark.parametrize("n", [1, 2, 5, 20])
def test_fewer_images_than_k1(n):
    got, want = check(clustered(n, seed=n), k1=20, k2=6)
    if n == 1:
        assert got.nnz == 1 and got[0, 0] == 0


def test_smallest_k_breaks_ties_by_lower_index():
    row = torch.tensor([[3.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0] * 4])
    for margin in (0, 2, 50):
        vals, idx = smallest_k(row, 6, margin=margin)
        want = np.argsort(row.numpy()[0], kind="stable")[:6]
        np.testing.assert_array_equal(idx[0].numpy(), want)


def full_row_ranks(x, width):
    """First ranks of every row from one full distance matrix, computed as the reference computes it."""
    n = len(x)
    d = (2 * x.pow(2).sum(1, keepdim=True)).expand(n, n) - 2 * torch.mm(x, x.t())
    top = d.max(0).values
    vals, idx = torch.sort((d / top).t(), dim=1, stable=True)  # ties: lower index first
    return vals[:, :width], idx[:, :width], top


def lattice_features():
    """Every distinct non-zero direction of {0..3}^4: many exactly tied cosines, no duplicate rows."""
    pts = np.array(np.meshgrid(*[range(4)] * 4)).reshape(4, -1).T[1:].astype(np.float64)
    unit = np.unique(np.round(pts / np.linalg.norm(pts, axis=1, keepdims=True), 12), axis=0)
    return torch.tensor(unit, dtype=torch.float32)


@pytest.mark.parametrize("case", ["random", "lattice"])
def test_symmetric_tiles_rank_like_full_rows(case, monkeypatch):
    from dualref.clustering import jaccard
    x = (lattice_features() if case == "lattice" else
         torch.nn.functional.normalize(torch.randn(300, 8, generator=torch.Generator().manual_seed(0)), dim=1))
    monkeypatch.setattr(jaccard, "BLOCK_ELEMS", 96 ** 2)  # tiles of 96: many, ragged last one
    dist = jaccard.FeatureDistance(x)
    assert dist.rep is None
    vals, idx = dist.first_ranks(64)
    want_vals, want_idx, top = full_row_ranks(x, 64)
    # the tiles' products are the full product's numbers: the same bits, the same ranks
    assert torch.equal(dist.row_max, top)
    assert torch.equal(vals, want_vals) and torch.equal(idx, want_idx)
    assert (vals[:, 0].abs() < 1e-6).all()  # itself (or an equal neighbour) first, a few 1e-8 off 0
    if case == "lattice":  # exact ties remain (equal norms and products): ordered by index
        assert ((vals[:, 1:] == vals[:, :-1]).sum(1) > 0).float().mean() > 0.5


def test_symmetric_tiles_step_aside_for_duplicates_and_small_sets():
    from dualref.clustering.jaccard import FeatureDistance
    x = torch.nn.functional.normalize(torch.randn(80, 4), dim=1)
    assert FeatureDistance(x).first_ranks(64) is None  # 64 + 16 candidates >= 80 rows
    x = torch.nn.functional.normalize(torch.randn(300, 4), dim=1)
    x[7] = x[3]
    assert FeatureDistance(x).first_ranks(64) is None  # exact duplicates need the row path


def reference_arithmetic_jaccard(feats, k1=20, k2=6, normalise=True):
    """The reference's own float32 arithmetic, written plainly (dense torch, loops).

    Differs from :func:`oracle_jaccard` where rounding matters: ranking
    distance 2|x|^2 - 2 x.y divided by the column maximum, V rows summed in
    float32, and the Jaccard distance as 1 - m / (2 - m) from a float32 sum of
    minima m, clipped at 0. Identical V rows then give either 0 or a residue
    of a few 1e-8, depending on how their float32 sum rounds.
    """
    x = torch.as_tensor(feats, dtype=torch.float32)
    if normalise:  # the reference is handed features the model normalised already
        x = torch.nn.functional.normalize(x, dim=1)
    n = x.shape[0]
    d = (2 * x.pow(2).sum(1, keepdim=True)).expand(n, n) - 2 * x @ x.T
    d = (d / d.max(0).values).T
    rank = torch.argsort(d, dim=1)

    def recip(i, k):
        fwd = rank[i, :k + 1]
        return fwd[(rank[fwd, :k + 1] == i).any(1)]

    v = torch.zeros(n, n)
    for i in range(n):
        base = recip(i, k1)
        members = base
        for c in base.tolist():
            cand = recip(c, int(np.around(k1 / 2)))
            if np.intersect1d(cand.numpy(), base.numpy()).size > 2 / 3 * cand.numel():
                members = torch.cat((members, cand))
        members = torch.unique(members)
        w = torch.exp(-d[i, members])
        v[i, members] = w / w.sum()
    if k2 != 1:
        v = v[rank[:, :k2].reshape(-1)].view(n, k2, n).sum(1) / k2
    out = torch.zeros(n, n)
    for i in range(n):
        m = torch.zeros(n)
        for k in torch.nonzero(v[i])[:, 0].tolist():
            rows = torch.nonzero(v[:, k])[:, 0]
            m[rows] += torch.minimum(v[i, k], v[rows, k])
        out[i] = 1 - m / (2 - m)
    return out.clamp(min=0).numpy()


def reference_eps(dist, rho):
    tri = np.triu(dist, 1)
    tri = np.sort(tri[np.nonzero(tri)])
    return float(tri[:int(np.round(rho * tri.size))].mean())


def tight_groups(seed, n=240, per_id=8, noise=0.2, dim=32):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(n // per_id, dim))
    return (centers[np.repeat(np.arange(n // per_id), per_id)]
            + noise * g.normal(size=(n, dim))).astype(np.float32)


def dense_with_ones(sparse):
    dense = np.ones(sparse.shape, dtype=np.float32)
    coo = sparse.tocoo()
    dense[coo.row, coo.col] = coo.data
    return dense


@pytest.mark.parametrize("seed,n", [(0, 240), (1, 240), (2, 200)])
def test_identical_vector_pairs_round_like_the_reference(seed, n):
    # Tight groups give many pairs whose V rows agree (same k2 neighbours): the
    # reference's float32 arithmetic leaves some of them at 0 and others at a
    # ~1e-7 residue that survives the non-zero filter of the eps quantile.
    # Ours computes every number as the reference does, so the two matrices
    # are equal bit for bit (n not a multiple of 32: the columns that torch's
    # dense query-expansion sum adds in its scalar order are exercised).
    x = tight_groups(seed, n=n)
    ref = reference_arithmetic_jaccard(x)
    dense = dense_with_ones(compute_jaccard_dist(x))
    off = ~np.eye(n, dtype=bool)  # the diagonal is not a pair: ours stores exact zeros there
    iu = np.triu_indices(n, 1)
    residues = (ref[iu] > 0) & (ref[iu] < 1e-5)
    assert residues.sum() > 10 and (ref[iu] == 0).sum() > 10  # both kinds occur
    np.testing.assert_array_equal(dense[off], ref[off])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eps_matches_the_reference_arithmetic(seed):
    x = tight_groups(seed, n=248)
    ref = reference_arithmetic_jaccard(x)
    ours = compute_jaccard_dist(x)
    for rho in (1.6e-3, 5e-3, 0.04):  # at 1.6e-3 a quarter of the pairs are rounding residues
        assert eps_from_rho(ours, rho) == pytest.approx(reference_eps(ref, rho), rel=1e-6)


def test_unit_features_are_taken_as_given():
    # The model's features are unit length to float32 rounding already; the
    # reference uses them as they are, and normalising again would move bits.
    x = torch.nn.functional.normalize(torch.as_tensor(tight_groups(3, n=240)), dim=1)
    again = torch.nn.functional.normalize(x, dim=1)
    assert not torch.equal(x, again)  # renormalising does change the numbers
    ref = reference_arithmetic_jaccard(x, normalise=False)
    dense = dense_with_ones(compute_jaccard_dist(x))
    off = ~np.eye(len(x), dtype=bool)
    np.testing.assert_array_equal(dense[off], ref[off])
    assert eps_from_rho(compute_jaccard_dist(x), 1.6e-3) == pytest.approx(reference_eps(ref, 1.6e-3), rel=1e-6)


def test_pseudo_labels_derive_eps_with_the_source_term_of_omitted_pairs():
    from dualref.clustering import DBSCANClusterer
    from dualref.pipeline.labels import make_pseudo_labels
    feats = torch.tensor(clustered(150, seed=8), dtype=torch.float32)
    source = torch.tensor(clustered(60, seed=9) + 0.5, dtype=torch.float32)
    lam, rho = 0.3, 0.2  # a fraction that reaches the omitted pairs
    got = make_pseudo_labels(feats, DBSCANClusterer(rho, 4), 20, 6, lambda_value=lam,
                             source_features=source, verbose=False)
    dist = compute_jaccard_dist(feats, lambda_value=lam, source_features=source).toarray()
    t = source_term(feats, source).numpy()
    omitted = np.ones_like(dist, dtype=bool)
    omitted[compute_jaccard_dist(feats, lambda_value=lam, source_features=source).nonzero()] = False
    dense = np.where(omitted, (1 - lam) + lam * np.add.outer(t, t), dist)
    tri = np.triu(dense, 1)
    tri = np.sort(tri[np.nonzero(tri)])
    want = tri[:int(np.round(rho * tri.size))].mean()
    assert got.stats["eps"] == pytest.approx(want, rel=1e-6)
    assert abs(eps_from_rho(compute_jaccard_dist(feats, lambda_value=lam, source_features=source), rho)
               - want) > 1e-3  # counting them at 1 would differ


def test_symmetric_csr_mirrors_the_upper_triangle_and_keeps_zeros():
    from dualref.clustering.jaccard import _symmetric_csr
    rng = np.random.default_rng(0)
    for _ in range(200):  # empty rows, missing diagonals, explicit zeros, empty input
        n = int(rng.integers(1, 12))
        iu = np.triu_indices(n)
        keep = rng.random(iu[0].size) < rng.random()
        i, j = iu[0][keep].astype(np.int32), iu[1][keep].astype(np.int32)
        d = np.where(rng.random(i.size) < 0.3, 0, rng.random(i.size)).astype(np.float32)
        got = _symmetric_csr(i, j, d, n)
        stored = {}
        for a, b, v in zip(i.tolist(), j.tolist(), d.tolist()):
            stored[a, b] = stored[b, a] = v
        rows = np.repeat(np.arange(n), np.diff(got.indptr))
        assert dict(zip(zip(rows.tolist(), got.indices.tolist()), got.data.tolist())) == stored
        assert got.nnz == len(stored)
        assert all((np.diff(got.indices[a:b]) > 0).all() for a, b in zip(got.indptr[:-1], got.indptr[1:]))


def test_rows_whose_neighbours_crowd_one_tile_are_ranked_exactly(monkeypatch):
    # Groups of 60 consecutive near-identical images: a row's first 80 ranks lie
    # mostly in one tile, beyond the few candidates a tile offers each row, so
    # those rows must be found and ranked from their full rows.
    from dualref.clustering import jaccard
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(5, 8, generator=g)
    x = torch.nn.functional.normalize(centres.repeat_interleave(60, 0) + 0.05 * torch.randn(300, 8, generator=g),
                                      dim=1)
    monkeypatch.setattr(jaccard, "BLOCK_ELEMS", 96 ** 2)  # tiles of 96 columns, 4 per row
    dist = jaccard.FeatureDistance(x)
    vals, idx = dist.first_ranks(64)
    want_vals, want_idx, _ = full_row_ranks(x, 64)
    assert dist.full_rows > 100
    assert torch.equal(vals, want_vals) and torch.equal(idx, want_idx)
