"""Layout: modules a reader can hold in their head (issue #17 item 4: none over 400 lines)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def long_modules(package: Path, limit: int = MAX_LINES) -> list[str]:
    """Each .py file under `package` (recursively) longer than `limit` lines, as 'path: N lines'."""
    found = []
    for path in sorted(package.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > limit:
            found.append(f"{path.relative_to(package.parent)}: {n} lines")
    return found


def test_no_module_is_over_400_lines():
    too_long = long_modules(ROOT / "src/mathse")
    assert not too_long, f"split by responsibility (at most {MAX_LINES} lines each): {too_long}"


def test_the_check_names_a_long_module_and_its_length(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "short.py").write_text("x = 1\n" * MAX_LINES)
    (package / "sub/long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert long_modules(package) == [f"pkg/sub/long.py: {MAX_LINES + 1} lines"]
