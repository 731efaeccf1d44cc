"""The shell commands shown in README.md and docs/*.md, as a reader would copy them.

A test that runs a documented command reads it with `doc_command(page, start)`, so the page and the test
cannot drift apart; tests/test_docs.py finds those calls and checks that every other command is run by a
named test or marked in the page as needing a GPU, a SLURM cluster or the network.

Commands live in fenced blocks: ```bash, ```sh, ```shell, ```console (only the `$ ` lines) and unlabelled
``` blocks (every line). Other labels (text, yaml, ...) hold no commands. A line ending in a backslash
continues on the next; a `#` that starts a word outside quotes starts the trailing comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LABELS = {"", "bash", "sh", "shell", "console"}
# What a trailing comment may say instead of a test running the command.
MARKS = ("needs a GPU", "needs a SLURM cluster", "needs the network")


def pages() -> list[str]:
    """The documentation pages, relative to the repository root."""
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    label: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    page: str
    line: int  # 1-based line where the command starts
    text: str  # continuation lines joined, trailing comment removed
    comment: str  # the trailing comment, without '#'; '' if none

    @property
    def mark(self) -> str | None:
        return next((m for m in MARKS if m in self.comment), None)


def blocks(page: str, text: str | None = None) -> list[Block]:
    """The fenced blocks of a page (indented fences inside list items included)."""
    lines = (ROOT / page).read_text().splitlines() if text is None else text.splitlines()
    out, i = [], 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```"):
            label, start, body = stripped[3:].strip(), i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"{page}:{start}: unclosed code block")
            indent = len(lines[start - 1]) - len(lines[start - 1].lstrip())
            out.append(Block(page, start, label, tuple(b[indent:] if b[:indent].isspace() else b for b in body)))
        i += 1
    return out


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment): a '#' at the start of a word, outside quotes, starts the comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def block_commands(block: Block) -> list[Command]:
    if block.label not in SHELL_LABELS:
        return []
    out, lines, i = [], block.lines, 0
    while i < len(lines):
        raw, number = lines[i], block.line + 1 + i
        i += 1
        if block.label == "console":
            if not raw.startswith("$ "):
                continue
            raw = raw[2:]
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts, comments = [], []
        while True:
            command, comment = split_comment(raw)
            comments.append(comment)
            if not command.endswith("\\"):
                parts.append(command.strip())
                break
            parts.append(command[:-1].strip())
            if i == len(lines):
                raise ValueError(f"{block.page}:{number}: continuation line at the end of the block")
            raw, i = lines[i], i + 1
        out.append(Command(block.page, number, " ".join(p for p in parts if p), " ".join(c for c in comments if c)))
    return out


def commands(page: str | None = None) -> list[Command]:
    """Every command of one page, or of all pages."""
    return [c for p in ([page] if page else pages()) for b in blocks(p) for c in block_commands(b)]


def doc_command(page: str, start: str) -> str:
    """The one command of `page` that is `start` or begins with it (word by word); fails on none or several."""
    words = start.split()
    found = [c.text for c in commands(page) if c.text.split()[: len(words)] == words]
    if len(found) != 1:
        raise AssertionError(f"{page}: expected one command starting with {start!r}, found {found}")
    return found[0]


INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# The programs whose inline mention counts as a command (environment assignments may come first).
PROGRAMS = re.compile(
    r"^(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/\S+|make|snakemake|python3?|pip|bash|sh|mathse|rm|apt-get|sudo)\s+\S"
)


def inline_commands(page: str) -> list[tuple[int, str]]:
    """Code spans outside fenced blocks that start like a command (a program and at least one argument)."""
    out, fenced = [], False
    for number, line in enumerate((ROOT / page).read_text().splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out += [(number, m.group(1)) for m in INLINE.finditer(line) if PROGRAMS.match(m.group(1).strip())]
    return out
