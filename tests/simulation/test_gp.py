"""The Gaussian process: its posterior std."""

import numpy as np

from app.simulation.gp import GaussianProcess, kernel, kernel_diagonal


def test_the_posterior_std_is_small_near_the_data_and_grows_away_from_it():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(60, 2))
    y = np.column_stack([np.sin(3 * x[:, 0]) + x[:, 1], x[:, 0]])
    hyper = {"length_scales": [0.5, 0.5], "linear_variance": 0.1, "noise_ratio": 1e-3, "seed_noise_weight": 0.0}
    gp = GaussianProcess.fit(x, y, np.zeros(60), hyper)
    z = (x - gp.x_mean) / gp.x_scale
    gram = kernel(z, z, hyper) + np.eye(60) * 1e-3
    probe = np.array([[0.1, -0.2], [0.95, 0.95]])
    cross = kernel(gp._clamped(probe), z, hyper)
    direct = kernel_diagonal(gp._clamped(probe), hyper) - np.einsum("ij,ji->i", cross,
                                                                             np.linalg.solve(gram, cross.T))
    np.testing.assert_allclose(gp.latent_std(probe), np.sqrt(direct) * gp.y_scale[0], rtol=1e-6)
    assert gp.latent_std(x[:1])[0] < 0.1 * gp.latent_std(np.array([[3.0, -3.0]]))[0]
