import re
from pathlib import Path

import pytest
import timm
import torch

from medcls.cli import main
from medcls.errors import CheckpointError, ConfigError
from medcls.models import Classifier
from medcls.models.ensemble import AveragedNet, Ensemble
from medcls.nets import TutorialNet
from tests.conftest import write_mnist

TASKS = {"digit": 10}
CONFIG = Path(__file__).parents[2] / "configs/mnist/tutorial.yaml"


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints of one training step and one validation batch through ``medcls fit``: the tutorial net, and a
    TimmNet whose weights file was deleted after training (``weights`` names where it was)."""
    root = tmp_path_factory.mktemp("members")
    mnist = write_mnist(root / "mnist", train=120, test=10)
    weights = root / "trunk.pth"
    torch.save(timm.create_model("test_resnet", num_classes=0, in_chans=1).state_dict(), weights)
    nets = {
        "tutorial": [],
        "timm": ["--model.net", "medcls.nets.TimmNet", "--model.net.name", "test_resnet", "--model.net.in_chans", "1",
                 "--model.net.pretrained", str(weights)],
    }  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for name, net in nets.items():
            main(["fit", "--config", str(CONFIG), *net, "--data.root", str(mnist), "--data.download", "false",
                  "--data.val_size", "20", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                  "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
                  "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                  "--checkpoint.dirpath", name, "--last_checkpoint.dirpath", name])  # fmt: skip
    weights.unlink()
    return {"tutorial": root / "tutorial/last.ckpt", "timm": root / "timm/last.ckpt", "weights": weights}


def images() -> torch.Tensor:
    return torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_members_load_on_first_use_before_setup_and_average(members: dict[str, Path]) -> None:
    net = AveragedNet(TASKS, [members["tutorial"], members["timm"]])
    assert len(net.members) == 0
    with torch.inference_mode():  # as a dry run of the command line may call it
        averaged = net(images())["digit"].exp()
    assert len(net.members) == 2 and not any(p.is_inference() for p in net.parameters())
    singles = []
    for path in (members["tutorial"], members["timm"]):
        member = AveragedNet(TASKS, [path])
        with torch.no_grad():
            singles.append(member(images())["digit"].exp())
    torch.testing.assert_close(averaged, (singles[0] + singles[1]) / 2)
    assert not torch.allclose(singles[0], singles[1])


def test_setup_after_a_first_forward_pass_keeps_the_members(members: dict[str, Path]) -> None:
    ensemble = Ensemble([str(members["tutorial"])], TASKS)
    with torch.no_grad():
        ensemble.net(torch.zeros(2, 1, 28, 28))
    (member,) = ensemble.net.members
    ensemble.setup("test")
    assert list(ensemble.net.members) == [member]


def test_a_member_whose_weights_file_has_moved_loads_the_weights_of_its_checkpoint(members: dict[str, Path]) -> None:
    checkpoint = torch.load(members["timm"], weights_only=True)
    assert checkpoint["hyper_parameters"]["net"]["init_args"]["pretrained"] == str(members["weights"])
    assert not members["weights"].exists()
    net = AveragedNet(TASKS, [members["timm"]])
    net.load()
    (member,) = net.members
    assert member.state_dict().keys() == checkpoint["state_dict"].keys()
    assert all(torch.equal(member.state_dict()[key], value) for key, value in checkpoint["state_dict"].items())


def spoiled(kind: str, members: dict[str, Path], path: Path) -> str:
    """Write a member that cannot be loaded to ``path``; return what the error says of it."""
    tutorial = members["tutorial"]
    if kind == "junk":
        path.write_bytes(b"not a checkpoint")
        return "is not a readable checkpoint (UnpicklingError: Unsupported operand"
    if kind == "a few bytes":
        path.write_bytes(b"junk")
        return "is not a readable checkpoint (struct.error: unpack requires a buffer of 4 bytes)"
    if kind == "truncated":
        path.write_bytes(tutorial.read_bytes()[: tutorial.stat().st_size // 2])
        return "is not a readable checkpoint (RuntimeError: PytorchStreamReader failed reading zip archive"
    if kind == "weights file":
        torch.save(TutorialNet(TASKS).state_dict(), path)
        return "is not a Lightning checkpoint (no state_dict); check --model.checkpoints"
    checkpoint = torch.load(tutorial, weights_only=True)
    if kind == "other module":
        torch.save({"state_dict": checkpoint["state_dict"], "hyper_parameters": {"lr": 0.1}}, path)
        return "is not a checkpoint of a medcls Classifier (no net or tasks)"
    if kind == "other tasks":
        checkpoint["hyper_parameters"]["tasks"] = {"letter": 10}
        torch.save(checkpoint, path)
        return "was trained for tasks {'letter': 10}, but the data has tasks {'digit': 10}"
    assert kind == "weights of another net"
    checkpoint["hyper_parameters"]["net"] = torch.load(members["timm"], weights_only=True)["hyper_parameters"]["net"]
    torch.save(checkpoint, path)
    return "does not load ("  # the reason is the Classifier's


@pytest.mark.parametrize(
    "kind",
    ["junk", "a few bytes", "truncated", "weights file", "other module", "other tasks", "weights of another net"],
)
def test_a_member_that_does_not_load_is_a_checkpoint_error_naming_it(
    kind: str, members: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "member.ckpt"
    said = spoiled(kind, members, path)
    net = AveragedNet(TASKS, [members["tutorial"], path])
    with pytest.raises(CheckpointError, match=re.escape(f"ensemble member {path} {said}")) as caught:
        net(torch.zeros(2, 1, 28, 28))
    assert "check --model.checkpoints" in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_member_or_none_is_refused_at_once(tmp_path: Path) -> None:
    message = f"ensemble member {tmp_path / 'gone.ckpt'} not found; check --model.checkpoints."
    with pytest.raises(CheckpointError, match=re.escape(message)):
        Ensemble([str(tmp_path / "gone.ckpt")], TASKS)
    with pytest.raises(ConfigError, match=re.escape("--model.checkpoints is empty; give the checkpoints to average")):
        Ensemble([], TASKS)


def test_a_member_is_a_classifier_in_eval_mode(members: dict[str, Path]) -> None:
    net = AveragedNet(TASKS, [members["tutorial"]])
    net.load()
    (member,) = net.members
    assert isinstance(member, Classifier) and not member.training and member.tasks == TASKS
