"""CUDA paths: dead-filter counts stay on the device, with no host synchronisation inside a training step.

Skipped where there is no CUDA device (CI never has one); run on a GPU machine with `pytest -m cuda`.
"""

import pytest
import torch
import torch.nn.functional as F
import torchvision

from tb_cnnviz import CNNViz
from tb_cnnviz.methods import DeadFilterMonitor

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_dead_filter_counts_stay_on_the_device_and_the_step_never_syncs(tmp_path):
    model = torchvision.models.resnet18(num_classes=10).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(8, 3, 64, 64, device="cuda")
    y = torch.randint(0, 10, (8,), device="cuda")
    viz = CNNViz(model, tmp_path, raise_errors=True)
    monitor = viz.watch_dead_filters(every=1000)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync in the step raises
    try:
        for step in range(3):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            viz.step(step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(counts.is_cuda for counts in monitor._counts.values())
    viz.close()


def test_cuda_counts_equal_cpu_counts():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(4, 3, 64, 64)
    with DeadFilterMonitor(model) as monitor:
        model(x)
        on_cpu = {k: r.rates for k, r in monitor.report().items()}
    model.cuda()
    with DeadFilterMonitor(model) as monitor:
        model(x.cuda())
        on_gpu = {k: r.rates for k, r in monitor.report().items()}
    assert on_cpu.keys() == on_gpu.keys()
    for name in on_cpu:
        torch.testing.assert_close(on_cpu[name], on_gpu[name])


def test_correspondence_runs_where_the_model_is_and_equals_the_cpu_answer():
    from tb_cnnviz.methods import correspondence

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    image = torch.rand(3, 96, 96)
    on_cpu = correspondence(model, image, image.flip(-1), "layer2", points=[[10.0, 20.0], [50.0, 60.0]])
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # full float32 convolutions, so that near ties break the same way
    try:
        on_gpu = correspondence(model.cuda(), image, image.flip(-1), "layer2", points=[[10.0, 20.0], [50.0, 60.0]])
    finally:
        torch.backends.cudnn.allow_tf32 = allowed
    assert torch.equal(on_cpu.cells_a, on_gpu.cells_a) and torch.equal(on_cpu.cells_b, on_gpu.cells_b)
    torch.testing.assert_close(on_cpu.scores, on_gpu.scores, rtol=1e-4, atol=1e-4)
    assert on_gpu.scores.device.type == "cpu"  # results come back to the host, small
