"""Correspondence: how often matches agree with a known transform, per layer, on the demo's DigitsNet trained
briefly and untrained (the peer measured in the same run), and the time per call there and on torchvision's
resnet18 at 224 px on the CPU. Run by hand: `python benchmarks/correspondence.py`.

A pair is a held-out digit and a copy moved by (2, 4) px (the blank border wraps round), then also mirrored; a match
is right when it lands within one receptive-field stride of where the transform puts the keypoint. Digits are
mostly blank background, whose cells match anywhere: only mutual matches off the background are counted.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
import torchvision

from tb_cnnviz.demo import DigitsNet, load_digits, moved_copy
from tb_cnnviz.methods import correspondence

SHIFT = (2, 4)


def train(steps: int = 600) -> DigitsNet:
    torch.manual_seed(0)
    images, labels = load_digits()
    model = DigitsNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(steps):
        batch = torch.randint(0, 1500, (64,))
        loss = F.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def rates(model: DigitsNet, images: torch.Tensor, layer: str, mirror: bool) -> tuple[float, int]:
    right = total = 0
    for image in images:
        other = moved_copy(image, SHIFT, mirror)
        found = correspondence(model, image, other, layer)
        truth = (found.points_a + torch.tensor(SHIFT, dtype=torch.float32)) % 32
        if mirror:
            truth[:, 1] = 31 - truth[:, 1]
        rows, cols = found.points_a.round().long().clamp(0, 31).T
        on_digit = image[0, rows, cols] > -0.9  # the keypoint sits on ink, not on the blank background
        keep = found.mutual & on_digit
        right += int(((found.points_b - truth).norm(dim=1) <= found.field.stride[0])[keep].sum())
        total += int(keep.sum())
    return right / max(total, 1), total


def timed(call, repeat: int = 5) -> float:
    call()
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    images, _ = load_digits()
    probes = images[-297:][:40]
    trained, untrained = train(), DigitsNet()
    torch.manual_seed(0)
    for mirror in (False, True):
        for layer in ("relu1", "relu2", "relu3"):
            (t_rate, t_n), (u_rate, u_n) = rates(trained, probes, layer, mirror), rates(untrained, probes, layer, mirror)
            print(f"{'shift+mirror' if mirror else 'shift       '} {layer}: trained {t_rate:.2f} ({t_n} mutual on ink), "
                  f"untrained {u_rate:.2f} ({u_n}); ratio {t_rate / max(u_rate, 1e-9):.2f}")
    digit = probes[0]
    print(f"DigitsNet 32x32 relu2: {1000 * timed(lambda: correspondence(trained, digit, digit.flip(-1), 'relu2')):.1f} ms/call")
    resnet = torchvision.models.resnet18().eval()
    image = torch.rand(3, 224, 224)
    pair = torch.stack([image, image.flip(-1)])
    forward = timed(lambda: resnet(pair), 3)  # the peer: one plain forward of the same two images
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        seconds = timed(lambda layer=layer: correspondence(resnet, image, image.flip(-1), layer), 3)
        print(f"resnet18 224 {layer}: {1000 * seconds:.0f} ms/call = {seconds / forward:.2f} x one forward of the pair "
              f"({1000 * forward:.0f} ms)")


if __name__ == "__main__":
    main()
