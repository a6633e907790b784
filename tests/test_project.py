import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def quick_start() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quick_start_is_two_commands_and_ci_runs_the_test_command() -> None:
    main_job, tests = quick_start()
    ci = ROOT.joinpath(".ci/run").read_text().splitlines()
    for step in tests.split(" && "):
        assert step in ci, f"README test step {step!r} is not what .ci/run runs"
    assert main_job.startswith(tests.split(" && pip")[0]) and "medcls fit --config configs/" in main_job
    assert ROOT.joinpath(main_job.rsplit("--config ", 1)[1].split()[0]).is_file()


def test_the_installed_command_exits_with_status_0_after_a_run(mnist_root: Path, tmp_path: Path) -> None:
    """The console script runs ``sys.exit(entry())``: the entry point must return None, not the CLI object."""
    command = Path(sys.executable).parent / "medcls"
    finished = subprocess.run(
        [str(command), "fit", "--config", str(ROOT / "configs/mnist/tutorial.yaml"), "--config",
         str(ROOT / "configs/presets/debug.yaml"), "--data.root", str(mnist_root), "--data.download", "false",
         "--data.val_size", "100", "--trainer.enable_progress_bar", "false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "Trainer.fit` stopped" in finished.stderr + finished.stdout
