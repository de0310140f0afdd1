"""The Lightning callback under a real lightning.Trainer on the CPU: a few epochs on the digits, the event
file read back (health flushes at their steps, one channel pushed off found exactly, the views at each
validation end, Lightning's own scalars in the same run), and `import tb_cnnviz` never importing Lightning."""

import subprocess
import sys
import warnings

import lightning  # a test extra (setup.py): a broken install fails here, it is not skipped
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger

from helpers import health_events
from tb_cnnviz.demo import DigitsNet, load_digits
from tb_cnnviz.lightning import CNNVizCallback
from tb_cnnviz.thinning import base_tag

pytestmark = pytest.mark.slow


class DigitsModule(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = DigitsNet()
        with torch.no_grad():
            self.net.conv2.bias[7] = -1e4  # channel 7 of relu2: off for every input, on purpose

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loaders():
    x, y = load_digits(size=16)
    train = torch.utils.data.TensorDataset(x[:256], y[:256])
    val = torch.utils.data.TensorDataset(x[256:320], y[256:320])
    return (torch.utils.data.DataLoader(train, batch_size=64, shuffle=True),
            torch.utils.data.DataLoader(val, batch_size=64)), (x[:4], y[:4])


def test_a_real_trainer_writes_health_and_views_through_its_tensorboard_logger(tmp_path):
    (train, val), (probe_x, probe_y) = loaders()
    logger = TensorBoardLogger(str(tmp_path), name="digits", version=0)
    callback = CNNVizCallback(probe_images=probe_x, probe_labels=probe_y, every_n_steps=4,
                              views=["activations", "filters", "grad_cam", "performance"], raise_errors=True)
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=logger, callbacks=[callback],
                                enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                                log_every_n_steps=1, num_sanity_val_steps=1)
    module = DigitsModule()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DeadFilterWarning for channel 7, Lightning's few-workers advice
        trainer.fit(module, train, val)
    run = tmp_path / "digits" / "version_0"
    dead, scalars = health_events(run)
    content, series = dead["net.relu2"]
    assert content.health == "dead"
    assert [step for step, _ in series] == [4, 8, 12]  # every 4 optimizer steps, at trainer.global_step
    flagged = [(rates >= 0.99).nonzero()[0].tolist() for _, rates in series]
    assert all(7 in channels for channels in flagged)  # the channel pushed off (channel 23 dies of itself)
    assert [v for _, v in scalars["cnnviz/dead_fraction/net.relu2"]] == pytest.approx([len(c) / 32 for c in flagged])
    assert {"train_loss", "val_loss", "cnnviz/sparsity/net.relu2", "cnnviz/dead_fraction/net.relu2",
            "cnnviz/accuracy/val/top1"} <= set(scalars)

    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    series = {}  # a picture series' slot tags (tb_cnnviz.thinning) as one
    for tag in acc.Tags()["tensors"]:
        series.setdefault(base_tag(tag), set()).update(e.step for e in acc.Tensors(tag))
    assert sorted(series["cnnviz/activations/net.conv1"]) == [4, 8, 12]  # each validation end; not the sanity check
    assert {"cnnviz/filters/net.conv1", "cnnviz/attribution/grad_cam", "cnnviz/performance/val"} <= set(series)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules()) == 0


@pytest.mark.parametrize("background", [False, True])
def test_a_budget_logs_every_view_by_autolog_within_it(tmp_path, background):
    (train, val), (probe_x, probe_y) = loaders()
    callback = CNNVizCallback(probe_images=probe_x, probe_labels=probe_y, every_n_steps=4, budget=0.5,
                              background=background, views=["activations", "filters", "performance"])
    trainer = lightning.Trainer(max_epochs=4, accelerator="cpu", devices=1, logger=TensorBoardLogger(str(tmp_path)),
                                callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
                                enable_checkpointing=False, num_sanity_val_steps=0)
    module = DigitsModule()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train, val)
    _, scalars = health_events(tmp_path / "lightning_logs" / "version_0")
    costs = {tag for tag in scalars if tag.startswith("cnnviz/cost/")}
    assert {"cnnviz/cost/activations", "cnnviz/cost/filters"} <= costs  # logged by the schedule, with costs
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules()) == 0


def test_bad_arguments_are_refused_naming_what_is_allowed():
    with pytest.raises(ValueError, match=r"views: unknown \['saliencey'\].*grad_cam.*with budget=: autolog's views"):
        CNNVizCallback(probe_images=torch.rand(1, 1, 8, 8), views=["saliencey"], budget=0.05)
    with pytest.raises(ValueError, match="background=True .* give budget="):
        CNNVizCallback(probe_images=torch.rand(1, 1, 8, 8), background=True)
    with pytest.raises(ValueError, match="views: unknown.*activations"):
        CNNVizCallback(probe_images=torch.rand(1, 1, 8, 8), views=["activation"])
    with pytest.raises(ValueError, match="need probe_images"):
        CNNVizCallback(views=["activations"])
    with pytest.raises(ValueError, match="every_n_steps"):
        CNNVizCallback(views=["performance"], every_n_steps=-1)


def test_importing_tb_cnnviz_does_not_import_lightning():
    code = "import sys, tb_cnnviz; tb_cnnviz.CNNViz; assert 'lightning' not in sys.modules and 'pytorch_lightning' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
