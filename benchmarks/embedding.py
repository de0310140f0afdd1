"""Laying out 10,000 codes of 512 dimensions: ``tb_cnnviz.methods.embed`` (exact neighbours in the codes, then
openTSNE) against scikit-learn's default ``TSNE`` on the same codes, in the same run, each at its defaults (ours
uses every core; scikit-learn's ``TSNE`` its own default). Printed for each: the time, the share of each
point's 10 nearest neighbours (in the codes) that are also its 10 nearest in the layout, over all points
(``neighbour_preservation``), and trustworthiness on a 2,000-point subset; then the ratios (goals: speed-up
>= 2.5x, neighbour preservation >= 0.95x scikit-learn's).

Codes with real cluster structure: 20 classes, each on its own random 8-dimensional subspace around its own
centre, through a ReLU, as penultimate-layer codes are (``clustered_codes``). ``--pca50`` adds the old recipe
(PCA to 50 dimensions first) for comparison.

    python benchmarks/embedding.py [--codes 10000] [--dimensions 512] [--pca50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import clustered_codes  # noqa: E402  (the codes the tests check the embedding on)

from tb_cnnviz.methods import embed, neighbour_preservation  # noqa: E402


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=10_000)
    parser.add_argument("--dimensions", type=int, default=512)
    parser.add_argument("--pca50", action="store_true", help="also time and score PCA to 50, then embed")
    args = parser.parse_args()
    codes, _ = clustered_codes(args.codes, args.dimensions)
    subset = np.random.default_rng(0).choice(len(codes), size=min(2000, len(codes)), replace=False)
    rows = {"tb_cnnviz embed (exact neighbours + openTSNE)": timed(lambda: embed(codes, seed=0))}
    if args.pca50:
        rows["PCA to 50, then embed (the old recipe)"] = timed(
            lambda: embed(PCA(50, random_state=0).fit_transform(codes), seed=0))
    rows["scikit-learn TSNE (defaults)"] = timed(lambda: TSNE(random_state=0).fit_transform(codes))

    print(f"{len(codes)} codes of {codes.shape[1]} dimensions (20 classes on 8-D subspaces), {torch.get_num_threads()} threads")
    kept = {}
    for name, (layout, seconds) in rows.items():
        kept[name] = neighbour_preservation(codes, layout, k=10)
        trust = trustworthiness(codes[subset], layout[subset], n_neighbors=10)
        print(f"{name:48s} {seconds:7.1f} s   10-NN kept {kept[name]:.3f}   trustworthiness {trust:.3f}")
    ours, theirs = "tb_cnnviz embed (exact neighbours + openTSNE)", "scikit-learn TSNE (defaults)"
    print(f"speed-up {rows[theirs][1] / rows[ours][1]:.2f}x (goal >= 2.5)   "
          f"10-NN kept {kept[ours] / kept[theirs]:.3f}x scikit-learn's (goal >= 0.95)")
    if args.pca50:
        print(f"old recipe: 10-NN kept {kept['PCA to 50, then embed (the old recipe)'] / kept[theirs]:.3f}x scikit-learn's")


if __name__ == "__main__":
    main()
