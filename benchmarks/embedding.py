"""Laying out 10,000 CNN codes: ``tb_cnnviz.methods.embed`` (PCA to 50 dimensions, then openTSNE) against
scikit-learn's default ``TSNE`` on the same codes, in the same run, each at its defaults (ours uses every
core; scikit-learn's ``TSNE`` its own default). Also printed: how well each layout keeps each code's 10
nearest neighbours (scikit-learn's ``trustworthiness`` on a 2,000-code subset).

Codes: resnet18's 512-D ``avgpool`` output (random weights) for 10,000 random 64x64 crops of scikit-learn's
photographs.

    python benchmarks/embedding.py [--codes 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torchvision
from sklearn.manifold import TSNE, trustworthiness

from performance_views import crops  # the same random crops as the other benchmarks
from tb_cnnviz.methods import collect_codes, embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=10_000)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    codes = collect_codes(model, crops(args.codes, 64, 250), "avgpool", n=args.codes).codes.numpy()

    start = time.perf_counter()
    ours = embed(codes, seed=0)
    our_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = TSNE(random_state=0).fit_transform(codes)
    their_seconds = time.perf_counter() - start

    subset = np.random.default_rng(0).choice(len(codes), size=min(2000, len(codes)), replace=False)
    print(f"{len(codes)} codes of {codes.shape[1]} dimensions, {torch.get_num_threads()} threads")
    print(f"tb_cnnviz embed (PCA 50 + openTSNE)   {our_seconds:8.1f} s   trustworthiness {trustworthiness(codes[subset], ours[subset]):.3f}")
    print(f"scikit-learn TSNE (defaults)          {their_seconds:8.1f} s   trustworthiness {trustworthiness(codes[subset], theirs[subset]):.3f}")
    print(f"speed-up {their_seconds / our_seconds:.2f}x (goal >= 2)")


if __name__ == "__main__":
    main()
