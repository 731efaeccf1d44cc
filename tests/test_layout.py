"""Layout (issue #17 item 4): modules a reader can hold in their head (none over 400 lines), grouped into
subpackages by stage of the data flow, with only infrastructure every stage uses left at the top."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400

# docs/development.md's map of the package; a new module goes into the stage it serves.
STAGES = {
    "problems": {"benchmarks", "data", "sources", "validate"},
    "generation": {"hf_backend", "rollout", "serve", "vllm_backend"},
    "judging": {"api", "checks", "extractor", "grading", "orm", "orm_train", "scoring", "teacher"},
    "training": {"assemble", "batches", "checkpoint", "metrics", "packing", "sharding", "tiny_model", "train"},
    "reporting": {"curves", "figures", "report", "report_pages", "report_tables", "summarize"},
}
INFRASTRUCTURE = {
    "artifacts", "bench", "cli", "config", "experiments", "faults", "jobserver", "logs", "modeling", "prompts",
    "runlock", "shards",
}  # fmt: skip


def long_modules(package: Path, limit: int = MAX_LINES) -> list[str]:
    """Each .py file under `package` (recursively) longer than `limit` lines, as 'path: N lines'."""
    found = []
    for path in sorted(package.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > limit:
            found.append(f"{path.relative_to(package.parent)}: {n} lines")
    return found


def members(package: Path) -> set[str]:
    """The modules and subpackages directly in `package`, by name (no __init__ or __main__)."""
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    return modules | {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}


def test_the_package_is_grouped_by_stage():
    package = ROOT / "src/mathse"
    assert members(package) == set(STAGES) | INFRASTRUCTURE, "a new module goes into its stage's subpackage"
    for stage, modules in STAGES.items():
        assert members(package / stage) == modules, stage
        assert (package / stage / "__init__.py").read_text().startswith('"""'), f"{stage}: say what the stage holds"


def test_no_module_is_over_400_lines():
    too_long = long_modules(ROOT / "src/mathse")
    assert not too_long, f"split by responsibility (at most {MAX_LINES} lines each): {too_long}"


def test_the_check_names_a_long_module_and_its_length(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "short.py").write_text("x = 1\n" * MAX_LINES)
    (package / "sub/long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert long_modules(package) == [f"pkg/sub/long.py: {MAX_LINES + 1} lines"]
