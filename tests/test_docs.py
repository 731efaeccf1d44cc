"""The commands the README and docs/ show work as written.

Every shell command of a page is run by a test (most read it from the page with `doccommands.doc_command`,
found here by reading the tests' source; the rest are listed in RUN_ELSEWHERE with the test that runs them),
or its trailing comment marks it as needing a GPU, a SLURM cluster or the network. Every `snakemake` command
line keeps its targets before `--configfile`/`--config`, which take every word after them, and plans (`-n`)
on the tiny config. `make demo` and the documented reruns run as written on the tiny config.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import doccommands
import pytest
import yaml
from doccommands import MARKS, ROOT, Command, blocks, commands, doc_command, inline_commands, pages

# Commands a test (or CI) runs without reading them from the page: (page, command) -> (runner, evidence, how).
# The runner is "file::function" (the evidence must be in that function's source) or a file.
RUN_ELSEWHERE = {
    ("README.md", "make test"): (".ci/run", "make test", "CI's entry point ends with it (the suite cannot run itself)"),
    ("docs/development.md", "make test"): (".ci/run", "make test", "as README.md's `make test`"),
    ("docs/development.md", "pip install -c requirements.txt ."): (
        "tests/test_packaging.py::test_pip_install_into_a_fresh_venv_gives_a_working_package",
        '"-c", "requirements.txt", "."',
        "in a copy of the package, into a fresh venv",
    ),
    ("docs/backends.md", ".venv/bin/python -m mathse.generation.serve results/model/tiny --port 8000"): (
        "tests/conftest.py::served_model",
        '"-m", "mathse.generation.serve", str(tiny_model_dir), "--port"',
        "on a session tiny model and a free port, with a required key; tests/test_serve.py talks to it",
    ),
    ("docs/backends.md", "bash scripts/setup_vllm_cpu.sh"): (
        ".ci/run",
        "bash scripts/setup_vllm_cpu.sh",
        "CI builds .venv-vllm with it before `make test`",
    ),
    ("docs/experiments.md", "make experiments"): (
        "tests/test_experiments.py::finished_experiment",
        "run_experiment(work)",
        "the same workflow (workflow/experiments.smk, then its --report) on a 2-arm x 2-seed tiny experiment, "
        "not on the preset (23.5 minutes on 2 cores)",
    ),
    ("docs/experiments.md", "make experiments EXPERIMENT=config/presets/paper_core.yaml"): (
        "tests/test_experiments.py::test_the_core_preset_runs_are_runs_of_the_full_preset",
        '"paper_core.yaml"',
        "the preset planned (its runs are the full preset's); the workflow runs in test_experiments.py's "
        "finished_experiment on a tiny experiment",
    ),
    ("docs/experiments.md",
     'make experiments EXPERIMENT="config/presets/paper_ablations.yaml config/presets/orm_judge_arms.yaml"'): (
        "tests/test_experiments.py::test_the_core_preset_runs_are_runs_of_the_full_preset",
        '"orm_judge_arms.yaml"',
        "the two files planned, merged in order (the full preset's runs plus two arms); the workflow runs in "
        "test_experiments.py's finished_experiment on a tiny experiment",
    ),
    ("docs/slurm.md", "bash .ci/slurm.sh up && .venv/bin/snakemake --profile profiles/slurm-local "
     "--configfile tests/config_tiny.yaml"): (
        "tests/test_slurm.py::test_scancelled_rollout_job_resumes_on_rerun_and_every_job_ran_on_slurm",
        "snakemake_cmd(tmp_path",
        "CI starts the cluster (.ci/run); the test runs the tiny DAG through profiles/slurm-local (snakemake_cmd)",
    ),
    ("docs/training-curves.md", "mathse curves results/"): (
        "tests/test_report.py::test_loss_curves_continue_across_rounds_beside_each_stages_accuracy",
        '"curves", str(res)',
        "through mathse.cli's entry function on the reported tiny run's results",
    ),
    ("docs/training-curves.md", "mathse curves results/ --plot curves.png"): (
        "tests/test_report.py::test_loss_curves_continue_across_rounds_beside_each_stages_accuracy",
        '"curves", str(res)',
        "through mathse.cli's entry function on the reported tiny run's results",
    ),
    ("docs/training-curves.md", "mathse curves results/ --json"): (
        "tests/test_report.py::test_loss_curves_continue_across_rounds_beside_each_stages_accuracy",
        '"curves", str(res)',
        "through mathse.cli's entry function on the reported tiny run's results",
    ),
    ("docs/performance.md", ".venv/bin/python -m mathse.bench vllm"): (
        "tests/test_bench_vllm.py::test_vllm_bench_runs_both_backends_compares_greedy_paths_and_writes_the_figure",
        'main(["vllm"',
        "through the bench's entry function, on a small run of the figure (3 prompts, the tiny model)",
    ),
    ("docs/slurm.md", "bash .ci/slurm.sh down"): (".ci/run", "bash .ci/slurm.sh down", "CI stops its cluster with it"),
}  # fmt: skip

# Commands no test runs, and why. Each entry is a gap, not a pass; keep the list short.
NOT_RUN = {
    ("docs/development.md", "make test-quick"): "the not-slow part of `make test` (which CI runs), not run as such",
    ("docs/performance.md", ".venv/bin/python -m mathse.bench"): "about 4 minutes (9 with the vllm figure), and "
    "rewrites BENCHMARKS.md; tests/test_bench.py and test_bench_vllm.py run each figure's function at small sizes",
}


def function_source(path: Path, name: str) -> str | None:
    text = path.read_text()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return ast.get_source_segment(text, node)
    return None


def commands_read_by_tests() -> dict[tuple[str, str], list[str]]:
    """(page, command) -> the tests that read it with doc_command (literal arguments only)."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "doc_command":
                    where = f"{path.name}:{call.lineno}"
                    assert all(isinstance(a, ast.Constant) for a in call.args), f"{where}: doc_command needs literals"
                    page, start = (a.value for a in call.args)
                    command = doccommands.doc_command(page, start)  # not by its bare name: this is no test's call
                    found.setdefault((page, command), []).append(f"{path.name}::{fn.name}")
    return found


def coverage() -> dict[Command, str]:
    """How each documented command is covered ('' for not at all)."""
    read = commands_read_by_tests()
    out = {}
    for c in commands():
        key = (c.page, c.text)
        if key in read:
            out[c] = "run by " + ", ".join(sorted(set(read[key])))
        elif re.match(r"(\S*/)?snakemake\s", c.text) and {"-n", "--dry-run", "--unlock"} & set(shlex.split(c.text)):
            # That test runs every snakemake line, adding -n to the others: these it runs as written.
            out[c] = "run by test_docs.py::test_documented_snakemake_commands_plan_on_the_tiny_config"
        elif key in RUN_ELSEWHERE:
            runner, _, how = RUN_ELSEWHERE[key]
            out[c] = f"run by {runner}: {how}"
        elif c.mark:
            out[c] = f"marked: {c.mark}"
        elif key in NOT_RUN:
            out[c] = f"not run: {NOT_RUN[key]}"
        else:
            out[c] = ""
    return out


def test_every_documented_command_is_run_by_a_test_or_marked():
    uncovered = [f"{c.page}:{c.line}: {c.text}" for c, how in coverage().items() if not how]
    assert not uncovered, (
        "commands no test runs and no mark explains (read them with doccommands.doc_command in the test that runs "
        f"them, or list them in RUN_ELSEWHERE, or mark them `# {' / '.join(MARKS)}`):\n" + "\n".join(uncovered)
    )


def test_the_list_of_commands_run_elsewhere_names_real_tests_that_run_them():
    documented = {(c.page, c.text) for c in commands()}
    stale = sorted((set(RUN_ELSEWHERE) | set(NOT_RUN)) - documented)
    assert not stale, f"listed but no longer in the docs: {stale}"
    for key, (runner, evidence, _) in RUN_ELSEWHERE.items():
        file, _, name = runner.partition("::")
        source = function_source(ROOT / file, name) if name else (ROOT / file).read_text()
        assert source is not None, f"{key}: no {runner}"
        assert evidence in source, f"{key}: {runner} does not run it (no {evidence!r} there)"


def test_commands_mentioned_in_prose_are_shown_in_a_block():
    """A command in running text (`make demo`) must be, word for word, the start of a block's command, which
    the checks above cover; `.venv/bin/` in front of the program is ignored."""

    def words(text: str) -> list[str]:
        w = text.split()
        return [w[0].removeprefix(".venv/bin/"), *w[1:]]

    shown = [words(c.text) for c in commands()]
    loose = [
        f"{page}:{line}: {text}"
        for page in pages()
        for line, text in inline_commands(page)
        if not any(s[: len(words(text))] == words(text) for s in shown)
    ]
    assert not loose, "commands in prose that no block shows:\n" + "\n".join(loose)


def test_shell_blocks_are_labelled():
    """An unlabelled block is read as commands; a diagram or a message must say `text`."""
    unlabelled = [f"{b.page}:{b.line}" for p in pages() for b in blocks(p) if b.label == ""]
    assert not unlabelled, f"label these code blocks (bash, console, text, yaml, ...): {unlabelled}"


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings, fenced = [], False
    for line in path.read_text().splitlines():
        fenced ^= line.strip().startswith("```")
        if not fenced and re.match(r"#+ ", line):
            headings.append(line.lstrip("#").strip())
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_relative_links_images_and_anchors_resolve():
    missing = []
    for page in pages():
        text = (ROOT / page).read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (ROOT / page).parent.joinpath(path) if path else ROOT / page
            if not file.exists() or (anchor and anchor not in anchors(file)):
                missing.append(f"{page}: {target}")
    assert not missing, missing


def test_readme_is_a_few_screens():
    assert len((ROOT / "README.md").read_bytes()) <= 15_000


# ---------------------------------------------------------------------------------------------------
# snakemake command lines: targets before the list options


def snakemake_lines() -> list[tuple[str, int, str]]:
    """(page, line, text) of every snakemake invocation in a shell block, also inside comments (such as
    `# = .venv/bin/snakemake ...`, what a make target runs)."""
    out = []
    for c in commands():
        for part in re.split(r"&&|\|\||;|\|", c.text):
            if re.match(r"\s*(\S*/)?snakemake\s", part):
                out.append((c.page, c.line, part.strip()))
    for page in pages():
        for b in blocks(page):
            if b.label not in ("bash", "sh", "shell", "console", ""):
                continue
            for i, line in enumerate(b.lines):
                comment = line.lstrip().removeprefix("$ ")
                m = re.match(r"#[\s=]*((?:\S*/)?snakemake\s.*)", comment)
                if m:
                    out.append((page, b.line + 1 + i, m.group(1).strip()))
    return out


@functools.cache
def snakemake_parser():
    from snakemake.cli import get_argument_parser

    return get_argument_parser()


def argument_order_problems(line: str) -> list[str]:
    """What is wrong with the order of a snakemake command line's arguments ([] if nothing)."""
    argv = shlex.split(line)[1:]
    try:
        args = snakemake_parser().parse_args(argv)
    except SystemExit:
        return [f"snakemake cannot parse {argv}"]
    problems = [
        f"--configfile takes {str(p)!r}, which is not a config file (a target after --configfile?)"
        for p in args.configfile or []
        if Path(p).suffix not in (".yaml", ".yml", ".json")
    ]
    problems += [f"--config takes {c!r}, which is not KEY=VALUE (a target after --config?)" for c in args.config or []
                 if "=" not in c]  # fmt: skip
    return problems


def test_the_argument_order_check_catches_a_target_after_the_config_lists():
    """The check itself, on the mistake the docs once made (FileNotFoundError on the target)."""
    bad = ".venv/bin/snakemake --profile profiles/local --configfile my.yaml results/orm/eval.md"
    assert argument_order_problems(bad) == [
        "--configfile takes 'results/orm/eval.md', which is not a config file (a target after --configfile?)"
    ]
    assert argument_order_problems("snakemake -n --config run.rounds=1 results/summary.parquet")
    good = ".venv/bin/snakemake --profile profiles/local results/orm/eval.md --configfile my.yaml"
    assert argument_order_problems(good) == []


def test_documented_snakemake_commands_put_targets_before_the_config_lists():
    lines = snakemake_lines()
    assert len(lines) >= 10, lines  # the docs show many; finding few means the extraction broke
    wrong = [f"{page}:{n}: {text}: {p}" for page, n, text in lines for p in argument_order_problems(text)]
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------------------------------------------
# Running the commands in a project folder laid out as a user's: the workflow, a .venv/bin with this
# interpreter behind `python`, `snakemake`, `mathse` and `ruff`, and config/config.yaml the tiny config.


def tiny_config(**sections) -> dict:
    cfg = yaml.safe_load((ROOT / "tests/config_tiny.yaml").read_text())
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def make_project(path: Path, cfg: dict) -> Path:
    path.mkdir(parents=True)
    for name in ("Snakefile", "Makefile"):  # copied: the Snakefile's folder is where config/config.yaml is read
        shutil.copy(ROOT / name, path / name)
    for name in ("workflow", "scripts", "profiles", "src", "tests", "envs", "pyproject.toml", "requirements.txt"):
        (path / name).symlink_to(ROOT / name)
    (path / "config").mkdir()
    (path / "config/presets").symlink_to(ROOT / "config/presets")
    (path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    (path / "my.yaml").write_text(yaml.safe_dump(cfg))
    bin_ = path / ".venv/bin"
    bin_.mkdir(parents=True)
    programs = {"python": "", "snakemake": "-m snakemake", "mathse": "-m mathse.cli"}
    for name, args in programs.items():
        (bin_ / name).write_text(f'#!/bin/sh\nexec {sys.executable} {args} "$@"\n')
    (bin_ / "ruff").write_text(f'#!/bin/sh\nexec {Path(sys.executable).parent / "ruff"} "$@"\n')
    for script in bin_.iterdir():
        script.chmod(0o755)
    (path / ".venv/.mathse-installed").touch()  # newer than requirements.txt: make does not reinstall
    return path


def project_env(path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MATHSE_FAILPOINT"}
    return {**env, "PYTHONPATH": str(ROOT / "src"), "PATH": f"{path / '.venv/bin'}:{env['PATH']}"}


def run(cmd: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    """A documented command, run by bash as a user would type it."""
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=project_env(cwd), capture_output=True, text=True, **kw)


def ok(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{proc.args[-1]} -> {proc.returncode}\n{out[-6000:]}"
    return out


def test_mathse_import_and_score_commands_run_as_written(tmp_path):
    """The benchmark page's command-line block on MathVista-shaped files (the fixture's published schema)."""
    import polars as pl
    from conftest import write_mathvista

    project = make_project(tmp_path / "project", tiny_config())
    write_mathvista(project / "benchmarks")
    whole = doc_command(
        "docs/benchmarks.md",
        ".venv/bin/mathse import --format mathvista 'benchmarks/MathVista/data/testmini-*.parquet' "
        "-o bench/mathvista.parquet",
    )
    gps = doc_command(
        "docs/benchmarks.md",
        ".venv/bin/mathse import --format mathvista 'benchmarks/MathVista/data/testmini-*.parquet' "
        "-o bench/gps.parquet",
    )
    ok(run(whole, project))
    out = ok(run(gps, project))
    problems = pl.read_parquet(project / "bench/mathvista.parquet")
    assert 0 < pl.read_parquet(project / "bench/gps.parquet").height < problems.height, out
    responses = problems.select("problem_id", response=pl.col("answer"))  # the stored answers as responses
    responses.write_parquet(project / "responses.parquet")
    out = ok(run(doc_command("docs/benchmarks.md", ".venv/bin/mathse score"), project))
    scores = pl.read_parquet(project / "scores.parquet")
    assert out.startswith("mathvista: accuracy ") and scores.height == problems.height and scores["correct"].any()


def test_the_config_files_regenerate_as_documented(tmp_path):
    """`python -m mathse.config --write` writes the schema and defaults that are committed."""
    project = make_project(tmp_path / "project", tiny_config())
    (project / "workflow").unlink()  # written here, not into the repository through the link
    out = ok(run(doc_command("docs/configuration.md", ".venv/bin/python -m mathse.config --write"), project))
    for name in ("workflow/schemas/config.schema.json", "config/defaults.yaml"):
        assert (project / name).read_text() == (ROOT / name).read_text(), out


@pytest.mark.slow
def test_documented_snakemake_commands_plan_on_the_tiny_config(tmp_path):
    """Each snakemake line (and the make targets and --unlock that start Snakemake) in a project of its own,
    my.yaml the tiny config, my-7b.yaml a paper preset on a stand-in checkpoint, the benchmark files the
    fixtures write; snakemake lines get `-n`. They run at once: most of each is Snakemake's start-up."""
    from conftest import write_mathverse, write_mathvision, write_mathvista
    from test_workflow import write_mathvision_parquet

    shared = tmp_path / "shared"
    bench = shared / "benchmarks"
    write_mathvista(bench)
    write_mathverse(bench)
    write_mathvision_parquet(write_mathvision(shared / "raw"), bench / "MathVision/data/test-00000-of-00001.parquet")
    (shared / "checkpoint").mkdir()
    (shared / "checkpoint/config.json").write_text("{}")
    preset = (ROOT / "config/presets/qwen2-vl-7b.yaml").read_text()
    (shared / "my-7b.yaml").write_text(preset.replace("/path/to/Qwen2-VL-7B-Instruct", str(shared / "checkpoint")))

    # The ORM page's command needs its my.yaml: the tiny config with the page's ORM settings.
    orm_settings = re.search(r"with `(orm: \{[^`]*\})` in `my\.yaml`", (ROOT / "docs/backends.md").read_text())
    orm_config = tiny_config(**yaml.safe_load(orm_settings.group(1)))
    plans = [
        (f"{page}:{n}", text if {"-n", "--unlock"} & set(shlex.split(text)) else f"{text} -n")
        for page, n, text in snakemake_lines()
    ]
    plans += [
        ("make dry-run", doc_command("docs/configuration.md", "make dry-run")),
        ("make lint", doc_command("docs/development.md", "make lint")),
    ]
    procs = []
    for i, (where, cmd) in enumerate(plans):
        project = make_project(tmp_path / f"p{i}", orm_config if "results/orm/" in cmd else tiny_config())
        (project / "benchmarks").symlink_to(bench)
        (project / "my-7b.yaml").symlink_to(shared / "my-7b.yaml")
        (project / "checkpoints").mkdir()
        (project / "checkpoints/Qwen2-VL-7B-Instruct").symlink_to(shared / "checkpoint")
        env = project_env(project)
        procs.append((where, cmd, subprocess.Popen(["bash", "-c", cmd], cwd=project, env=env, text=True,
                                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))  # fmt: skip
    failed = []
    for where, cmd, proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            failed.append(f"{where}: {cmd} -> {proc.returncode}\n{out[-3000:]}")
        elif cmd.endswith(" -n") and "This was a dry-run" not in out and "Nothing to be done" not in out:
            failed.append(f"{where}: {cmd}: no plan in the output\n{out[-3000:]}")
    assert not failed, "\n\n".join(failed)


@pytest.mark.slow
def test_make_demo_and_the_documented_reruns_run_as_written(tmp_path):
    """`make demo` and the reruns of docs/configuration.md, docs/reliability.md and docs/report.md, word for
    word, on the tiny config (its rollout shards of 4 problems: the failpoint's second shard exists) with 3
    rounds (the report page's diff compares round_2 and round_3)."""
    project = make_project(tmp_path / "project", tiny_config(run={"rounds": 3}))
    res = project / "results"

    def markers() -> list[int]:
        """When each round's model was last written (its training marker), rounds 0 to 3."""
        return [(res / f"round_{r}/adapter/mathse_train.json").stat().st_mtime_ns for r in range(4)]

    # Killed in round 1's rollout after its second shard, then resumed by the next make demo.
    cmd = doc_command("docs/reliability.md", "MATHSE_FAILPOINT=rollout_shard@2 make demo")
    proc = run(cmd, project, start_new_session=True)
    assert proc.returncode == -9, f"{cmd} -> {proc.returncode}\n{(proc.stdout + proc.stderr)[-4000:]}"
    assert not (res / "round_1/rollouts.parquet").exists()
    assert len(list(res.glob("round_1/rollouts.parquet.shards/*/shard_*.parquet"))) == 2

    out = ok(run(doc_command("README.md", "make demo"), project))
    assert "| stage | train examples | synthetic |" in out and "| round_3 |" in out
    assert "resumed, 2 of" in (project / "logs/rollout/round_1.log").read_text()
    assert (res / "report.html").stat().st_size > 100_000
    assert "Nothing to be done" in ok(run("make demo", project))  # "make demo again ... runs no job"

    out = ok(run(doc_command("docs/report.md", "mathse summary results"), project))
    assert out.startswith("| stage | train examples | synthetic |\n") and "| round_3 |" in out
    out = ok(run(doc_command("docs/report.md", "mathse show"), project))
    assert out.startswith("pool-000000 in results/round_1/judgments.parquet (judgment, ")
    out = ok(run(doc_command("docs/report.md", "mathse diff"), project))
    assert out.startswith("synthetic: round_2 -> round_3, 9 problems")

    # Delete an artifact: round 3 from the judge on reruns, the rounds before it and round 3's rollout do not.
    before, rollouts = markers(), (res / "round_3/rollouts.parquet").stat().st_mtime_ns
    ok(run(doc_command("docs/configuration.md", "rm results/round_3/judgments.parquet"), project))
    after = markers()
    assert after[:3] == before[:3] and after[3] > before[3] and (res / "round_3/judgments.parquet").exists()
    assert (res / "round_3/rollouts.parquet").stat().st_mtime_ns == rollouts

    # Your own settings (the same ones here): nothing to do.
    out = ok(run(doc_command("docs/configuration.md", ".venv/bin/snakemake --profile profiles/local --configfile"),
                 project))  # fmt: skip
    assert "Nothing to be done" in out

    # Retrain one model only: round 3, which starts from it, is left behind.
    before = markers()
    ok(run(doc_command("docs/configuration.md", ".venv/bin/snakemake --profile profiles/local -f"), project))
    after = markers()
    assert after[2] > before[2] and [after[r] for r in (0, 1, 3)] == [before[r] for r in (0, 1, 3)]

    # The report brings the later rounds up to date first.
    time.sleep(1)
    before, report = markers(), (res / "report.html").stat().st_mtime_ns
    ok(run(doc_command("docs/report.md", "make report"), project))
    after = markers()
    assert after[:3] == before[:3] and after[3] > before[3] and (res / "report.html").stat().st_mtime_ns > report

    # Retrain rounds 0 and 1 and stop there (`make demo` would bring rounds 2 and 3 up to date, as make report did).
    before = markers()
    ok(run(doc_command("docs/configuration.md", ".venv/bin/snakemake --profile profiles/local --forcerun"), project))
    after = markers()
    assert after[0] > before[0] and after[1] > before[1] and after[2:] == before[2:]
    assert "round_2" in ok(run("make dry-run", project))  # round 2 is out of date, not rerun

    ok(run(doc_command("docs/configuration.md", "make clean"), project))
    assert not any((project / name).exists() for name in ("results", "logs", ".snakemake"))
