"""What a Gaussian model of each class alone makes of the 100k flips table of `benches/flips_100k.py` (session 27):
scikit-learn's GaussianMixture with full covariances, one and two components per class, fitted on the trusted
reference and on the data itself, each row ranked by 1 - the posterior of its label. The table's generator draws
each class as two Gaussian clusters, so two components are its own model. Then, as poisonscan's Gaussian voter sees
the table (session 28): the data's features robustly scaled (median, IQR / 1.349) with tails beyond 1 log-compressed
(`sign(v) (1 + ln |v|)`), 10,000 evenly spread data rows in five stratified folds, every row scored by the average of
the five fold models. Needs numpy and scikit-learn; a few minutes.

    python benches/flips_100k_gaussians.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flips_100k import flipped  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    rows = ap.parse_args().rows
    # The table exactly as benches/flips_100k.py makes it.
    x, y, ref, yd, flip = flipped(rows)
    sc = StandardScaler().fit(x[ref:])
    xr, yr, xd = sc.transform(x[:ref]), y[:ref], sc.transform(x[ref:])
    k = int(flip.sum())

    def precision_at_k(score: np.ndarray) -> float:
        return float(flip[np.argsort(-score)[:k]].mean())

    def ranked(xf: np.ndarray, yf: np.ndarray, components: int) -> np.ndarray:
        models = [GaussianMixture(components, covariance_type="full", reg_covar=1e-3, random_state=0).fit(xf[yf == c])
                  for c in range(5)]
        prior = np.bincount(yf, minlength=5) / len(yf)
        ll = np.stack([m.score_samples(xd) + np.log(p) for m, p in zip(models, prior)], 1)
        ll -= ll.max(1, keepdims=True)
        post = np.exp(ll)
        post /= post.sum(1, keepdims=True)
        return 1 - post[np.arange(rows), yd]

    print(f"{rows} data rows, {k} flipped; precision@k of 1 - p(label):")
    for components in (1, 2):
        print(f"  {components} Gaussian(s) per class: fitted on the reference {precision_at_k(ranked(xr, yr, components)):.3f}, "
              f"on the data {precision_at_k(ranked(xd, yd, components)):.3f}")

    raw = x[ref:].astype(np.float64)
    scaled = (raw - np.median(raw, 0)) / (np.subtract(*np.percentile(raw, [75, 25], 0)) / 1.349)
    squashed = np.where(np.abs(scaled) <= 1, scaled, np.sign(scaled) * (1 + np.log(np.abs(scaled).clip(1))))
    sample = np.linspace(0, rows - 1, min(rows, 10_000)).astype(int)

    def folded(components: int) -> np.ndarray:
        xs, ys = squashed[sample], yd[sample]
        post = np.zeros((rows, 5))
        for train, _ in StratifiedKFold(5, shuffle=True, random_state=0).split(xs, ys):
            xt, yt = xs[train], ys[train]
            models = [GaussianMixture(components, covariance_type="full", reg_covar=1e-3, random_state=0)
                      .fit(xt[yt == c]) for c in range(5)]
            prior = np.bincount(yt, minlength=5) / len(yt)
            ll = np.stack([m.score_samples(squashed) + np.log(p) for m, p in zip(models, prior)], 1)
            ll -= ll.max(1, keepdims=True)
            p = np.exp(ll)
            post += p / p.sum(1, keepdims=True)
        return 1 - post[np.arange(rows), yd] / 5

    print("  as poisonscan's voter sees it (log-compressed, 10,000 rows, five folds): "
          + ", ".join(f"{c} Gaussian(s) {precision_at_k(folded(c)):.3f}" for c in (1, 2, 3)))


if __name__ == "__main__":
    main()
