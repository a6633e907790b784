import re
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
