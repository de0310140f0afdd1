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


def _small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 5),
    )


@pytest.mark.parametrize("method", ["saliency", "deconvnet", "guided_backprop", "grad_cam", "guided_grad_cam"])
def test_attribution_on_cuda_equals_cpu(method):
    from tb_cnnviz.methods.attribution.registry import attribution_map

    model = _small_cnn().eval()
    x = torch.rand(3, 3, 32, 32)
    targets = torch.tensor([0, 2, 4])
    on_cpu = attribution_map(method, model, x, targets)
    on_gpu = attribution_map(method, model.cuda(), x.cuda(), targets.cuda())
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-4, atol=1e-5)


def test_occlusion_and_top_activations_on_cuda_equal_cpu():
    from tb_cnnviz.methods import occlusion, top_activations

    model = _small_cnn().eval()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(occlusion(model.cuda(), x.cuda(), window=8, stride=4).cpu(),
                               occlusion(model.cpu(), x, window=8, stride=4), rtol=1e-4, atol=1e-5)
    data = [torch.rand(4, 3, 32, 32) for _ in range(3)]
    on_cpu = top_activations(model.cpu(), data, "3", k=3)
    on_gpu = top_activations(model.cuda(), [batch.cuda() for batch in data], "3", k=3)
    torch.testing.assert_close(on_gpu.values.cpu(), on_cpu.values, rtol=1e-4, atol=1e-5)
    assert torch.equal(on_gpu.image.cpu(), on_cpu.image)


def test_every_logging_call_works_on_a_cuda_model_with_cpu_probes(tmp_path):
    """Probe images usually come from a CPU data set while the model sits on the GPU."""
    model = _small_cnn().cuda()
    probes = torch.rand(4, 3, 32, 32)
    viz = CNNViz(model, tmp_path, probe_images=probes, probe_labels=[0, 1, 2, 3], raise_errors=True)
    data = [(torch.rand(4, 3, 32, 32), torch.randint(0, 5, (4,))) for _ in range(3)]
    assert viz.log_activations(0)
    assert viz.log_filters(0)
    viz.log_saliency(0, method="guided_backprop")
    viz.log_occlusion(0, window=8, stride=8)
    viz.log_top_activations(data, "3", 0, k=2)
    viz.log_performance(data, 0)
    assert all(p.is_cuda for p in model.parameters())
    viz.close()


def test_images_made_by_the_network_are_made_on_the_models_device():
    from tb_cnnviz.methods import channel_visualization, class_model, invert

    model = _small_cnn().cuda()
    rng = torch.cuda.get_rng_state()
    inverted = invert(model, torch.rand(2, 3, 16, 16), "3", steps=5)  # CPU image, CUDA model
    assert inverted.images.is_cuda and inverted.code_error.is_cuda
    assert class_model(model, [0, 4], size=(3, 16, 16), steps=5).images.is_cuda
    assert channel_visualization(model, "1", [0, 1], size=(3, 16, 16), steps=5).images.is_cuda
    assert torch.equal(torch.cuda.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())


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
