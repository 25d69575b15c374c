"""2-D projections (urllm/models/projection.py) on tiny random data.

The first UMAP call in the process compiles umap's numba kernels (~12 s); the rest is fast.
"""
import numpy as np
import pytest

from urllm.models.projection import ProjectionConfig, nearest_neighbours, pca_layout, project, project_space


def _random(n, d=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _two_clusters(n_each=100, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, d), dtype=np.float32)
    centres[0, 0] = centres[1, 1] = 6.0  # orthogonal directions: far apart in cosine
    x = np.concatenate([centres[k] + rng.normal(size=(n_each, d)) for k in (0, 1)]).astype(np.float32)
    return x, np.repeat(np.arange(2), n_each)


@pytest.mark.parametrize(
    "field,value",
    [("n_neighbors", 1), ("n_neighbors", 2.5), ("min_dist", -0.1), ("min_dist", 1.5),
     ("max_points", 0), ("seed", -1), ("seed", 2**32)],
)
def test_validate_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        ProjectionConfig(**{field: value}).validate()


def test_shapes_dtypes_and_determinism():
    x = _random(200)
    rows, xy = project(x, ProjectionConfig(seed=3))
    assert rows.dtype == np.int64 and rows.shape == (200,)
    np.testing.assert_array_equal(rows, np.arange(200))
    assert xy.dtype == np.float32 and xy.shape == (200, 2) and np.isfinite(xy).all()
    rows2, xy2 = project(x, ProjectionConfig(seed=3))
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_array_equal(xy, xy2)  # same input and seed: bit-identical


def test_sampling_respects_max_points():
    x = _random(300)
    rows, xy = project(x, ProjectionConfig(max_points=60, seed=1))
    assert rows.shape == (60,) and xy.shape == (60, 2)
    assert np.all(np.diff(rows) > 0)  # sorted and unique
    assert rows.min() >= 0 and rows.max() < 300
    other, _ = project(x, ProjectionConfig(max_points=60, seed=2))
    assert not np.array_equal(rows, other)


def test_n_neighbors_clamped_for_few_points():
    rows, xy = project(_random(6), ProjectionConfig(n_neighbors=50))
    assert rows.tolist() == list(range(6)) and xy.shape == (6, 2) and np.isfinite(xy).all()


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_small_n_falls_back_to_pca(n):
    x = _random(n) if n else np.zeros((0, 16), dtype=np.float32)
    rows, xy = project(x, ProjectionConfig())
    assert rows.dtype == np.int64 and rows.tolist() == list(range(n))
    assert xy.dtype == np.float32 and xy.shape == (n, 2) and np.isfinite(xy).all()
    np.testing.assert_array_equal(xy, pca_layout(x))
    if n == 1:
        np.testing.assert_array_equal(xy, 0.0)
    if n == 2:  # two centred points span one direction: the second column is ~0
        assert np.abs(xy[:, 0]).max() > 0
        np.testing.assert_allclose(xy[:, 1], 0.0, atol=1e-5)


def test_pca_fallback_keeps_distances_of_planar_points():
    x = np.array([[0, 0, 0], [3, 0, 0], [0, 4, 0]], dtype=np.float32)
    xy = pca_layout(x)
    dist = lambda a: np.linalg.norm(a[:, None] - a[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(dist(xy), dist(x), atol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_rejected_with_count(bad):
    x = _random(50)
    x[[3, 7, 11], 2] = bad
    with pytest.raises(ValueError, match="3 of 50 rows"):
        project(x)


def test_wrong_shape_rejected():
    with pytest.raises(ValueError, match="2-D"):
        project(np.zeros(10, dtype=np.float32))


def test_two_clusters_stay_separated():
    x, label = _two_clusters()
    rows, xy = project(x, ProjectionConfig(seed=0))
    lab = label[rows]
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same = lab[:, None] == lab[None]
    off_diag = ~np.eye(len(lab), dtype=bool)
    intra, inter = d[same & off_diag].mean(), d[~same].mean()
    assert intra < 0.5 * inter, (intra, inter)


def _brute_force(x, k):
    """Each row's k most cosine-similar other rows, by numpy."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sim, order, axis=1)


def test_nearest_neighbours_match_brute_force_and_never_the_point():
    x = _random(40, d=8, seed=3) * np.random.default_rng(4).uniform(0.1, 5, size=(40, 1)).astype(np.float32)
    nbrs, sims = nearest_neighbours(x, k=10)
    want, want_sims = _brute_force(x, 10)
    assert nbrs.shape == (40, 10) and nbrs.dtype == np.int64 and sims.dtype == np.float32
    np.testing.assert_array_equal(nbrs, want)  # cosine, not inner product: the rows' scales do not matter
    np.testing.assert_allclose(sims, want_sims, atol=1e-5)
    assert not (nbrs == np.arange(40)[:, None]).any()


def test_a_duplicate_row_is_a_neighbour_but_the_row_itself_is_not():
    x = _random(6, d=4)
    x[1] = x[0]  # the pair's cosine ties with the row itself
    nbrs, sims = nearest_neighbours(x, k=3)
    assert nbrs[0, 0] == 1 and nbrs[1, 0] == 0 and sims[0, 0] == pytest.approx(1.0)
    assert not (nbrs == np.arange(6)[:, None]).any()


@pytest.mark.parametrize("n", [0, 1, 3])
def test_fewer_points_than_k_pad_with_minus_one(n):
    nbrs, sims = nearest_neighbours(_random(n) if n else np.zeros((0, 16), np.float32), k=5)
    assert nbrs.shape == (n, 5)
    assert (nbrs[:, max(n - 1, 0):] == -1).all() and (nbrs[:, : max(n - 1, 0)] >= 0).all()


def test_project_space_neighbours_are_positions_among_the_projected_rows():
    x = _random(120, d=8, seed=6)
    out = project_space(x, ProjectionConfig(max_points=50, seed=0), k=10)
    assert sorted(out) == ["nbrs", "rows", "sims", "xy"]
    assert out["rows"].shape == (50,) and out["xy"].shape == (50, 2) and out["nbrs"].shape == (50, 10)
    want, _ = _brute_force(x[out["rows"]], 10)
    np.testing.assert_array_equal(out["nbrs"], want)
