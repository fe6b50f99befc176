"""One difficulty shared by every model: item response theory on prompt embeddings.

    P(model m answers prompt q well) = sigmoid(theta_m · (A x_q) + c_m − (w · x_q + w_0))

The prompt side is learned from every outcome of every model at once: `b(q) = w · x_q + w_0` is
the prompt's difficulty and `A x_q` a few latent traits of it; the model side is one ability
vector `theta_m` and an offset `c_m` per model. Difficulty learned across many models
transfers to traffic the router never saw far better than one head per model (MIRT-BERT,
IRT-Router), and a model profiled on a few dozen prompts borrows the whole prompt side:
`add_model` fits only its ability, with the prompt side frozen.

Fitted by L-BFGS on the weighted log loss of graded outcomes (scipy), with L2 on every weight.
scikit-learn's shape: `fit`, `predict_proba`, nothing learned before `fit`; plain arrays only.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def log_loss(p: np.ndarray, y: np.ndarray, eps: float = _EPS) -> np.ndarray:
    """Per row, the log loss of probability `p` on a graded outcome `y` in [0, 1]."""
    return -(y * np.log(np.clip(p, eps, 1)) + (1 - y) * np.log(np.clip(1 - p, eps, 1)))


class SharedDifficulty:
    """Multidimensional IRT with a linear prompt side on embeddings (see the module doc)."""

    ARRAYS = ("A", "w", "w0", "theta", "c")

    def __init__(
        self, dims: int = 8, C: float = 1.0, max_iter: int = 400, random_state: int = 0
    ) -> None:
        self.dims = dims
        # Inverse L2 strength on every weight, as scikit-learn's C: the penalty is
        # |weights|^2 / (2 C) against the summed (not mean) log loss of the outcomes.
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    # ---- fitting ------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, S: np.ndarray, weights: np.ndarray | None = None):
        """`X` (n, d) embeddings; `S` (n, M) each model's graded score, NaN where unknown."""
        from scipy.optimize import minimize

        X = np.asarray(X, dtype=np.float64)
        S = np.asarray(S, dtype=np.float64)
        n, d = X.shape
        m = S.shape[1]
        k = self.dims
        known = ~np.isnan(S)
        if not known.any():
            raise ValueError("no outcome to learn from")
        y = np.nan_to_num(S)
        wt = known * (1.0 if weights is None else np.asarray(weights, float)[:, None])
        total = wt.sum()
        sizes = (k * d, d, 1, m * k, m)
        ends = np.cumsum(sizes)

        def unpack(v: np.ndarray):
            A, w, w0, T, c = np.split(v, ends[:-1])
            return A.reshape(k, d), w, w0[0], T.reshape(m, k), c

        l2 = 1.0 / (2.0 * self.C * total)  # per weight, against the mean loss

        def loss_and_grad(v: np.ndarray):
            A, w, w0, T, c = unpack(v)
            H = X @ A.T
            Z = H @ T.T + c[None, :] - (X @ w + w0)[:, None]
            P = _sigmoid(Z)
            loss = float((wt * log_loss(P, y)).sum() / total)
            loss += l2 * ((A**2).sum() + (w**2).sum() + (T**2).sum())
            G = wt * (P - y) / total  # d loss / d Z
            gb = -G.sum(axis=1)
            grad = np.concatenate(
                [
                    ((G @ T).T @ X + 2 * l2 * A).ravel(),
                    X.T @ gb + 2 * l2 * w,
                    [gb.sum()],
                    (G.T @ H + 2 * l2 * T).ravel(),
                    G.sum(axis=0),
                ]
            )
            return loss, grad

        rng = np.random.default_rng(self.random_state)
        # Small random traits and abilities break the symmetry between the latent dimensions;
        # each model's offset starts at its base rate.
        rate = np.clip((y * wt).sum(0) / np.maximum(wt.sum(0), 1e-9), 0.02, 0.98)
        v0 = np.concatenate(
            [
                rng.normal(0, 0.01, k * d),
                np.zeros(d + 1),
                rng.normal(0, 0.1, m * k),
                np.log(rate / (1 - rate)),
            ]
        )
        res = minimize(
            loss_and_grad, v0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter}
        )
        self.A_, self.w_, self.w0_, self.theta_, self.c_ = unpack(res.x)
        self.w0_ = float(self.w0_)
        self.loss_ = float(res.fun)
        return self

    def add_model(self, X: np.ndarray, y: np.ndarray) -> int:
        """A new model from its own rows, with the prompt side frozen: fits its ability and
        offset only, shrunk towards the fitted models' mean. Returns its column."""
        from scipy.optimize import minimize

        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(y) == 0:
            raise ValueError("a new model needs at least one labelled row")
        H, b = X @ self.A_.T, self.difficulty_logit(X)
        k = self.dims
        l2 = 1.0 / (2.0 * self.C * len(y))
        prior = np.r_[self.theta_.mean(axis=0), self.c_.mean()]

        def loss_and_grad(v: np.ndarray):
            P = _sigmoid(H @ v[:k] + v[k] - b)
            g = (P - y) / len(y)
            d = v - prior  # with few rows the answer stays near the mean fitted model
            loss = float(log_loss(P, y).mean() + l2 * (d**2).sum())
            return loss, np.r_[H.T @ g, g.sum()] + 2 * l2 * d

        v0 = prior.copy()
        res = minimize(loss_and_grad, v0, jac=True, method="L-BFGS-B")
        self.theta_ = np.vstack([self.theta_, res.x[:k]])
        self.c_ = np.r_[self.c_, res.x[k]]
        return len(self.c_) - 1

    # ---- prediction ---------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "A_"):
            raise ValueError("this SharedDifficulty is not fitted yet; call fit()")

    def difficulty_logit(self, X: np.ndarray) -> np.ndarray:
        """b(q): higher is harder for every model alike."""
        self._check_fitted()
        return np.asarray(X, dtype=np.float64) @ self.w_ + self.w0_

    def logits(self, X: np.ndarray) -> np.ndarray:
        """(n, M) log-odds that each model answers well."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        return (
            (X @ self.A_.T) @ self.theta_.T + self.c_[None, :] - self.difficulty_logit(X)[:, None]
        )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logits(X))

    # ---- persistence (plain arrays) -------------------------------------------------------------

    def to_arrays(self, prefix: str = "irt_") -> dict[str, np.ndarray]:
        self._check_fitted()
        return {
            prefix + "A": self.A_.astype(np.float32),
            prefix + "w": self.w_.astype(np.float32),
            prefix + "w0": np.array([self.w0_], dtype=np.float64),
            prefix + "theta": self.theta_.astype(np.float64),
            prefix + "c": self.c_.astype(np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "irt_") -> SharedDifficulty:
        """A fitted model from `to_arrays`' arrays (its fitting parameters are not needed)."""
        self = cls(dims=int(arrays[prefix + "A"].shape[0]))
        self.A_ = arrays[prefix + "A"].astype(np.float64)
        self.w_ = arrays[prefix + "w"].astype(np.float64)
        self.w0_ = float(arrays[prefix + "w0"][0])
        self.theta_ = arrays[prefix + "theta"].astype(np.float64).reshape(-1, self.dims)
        self.c_ = arrays[prefix + "c"].astype(np.float64)
        return self
