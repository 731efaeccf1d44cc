"""Versioned prompt templates and the solution format shared by teacher, model and judge.

A solution is numbered steps followed by the paper's closing sentence:
    Step 1: The left bar is 3.
    Step 2: The right bar is 5.
    Step 3: 3 + 5 = 8.
    The answer to this problem is 8.
Every generated row records the prompt version it was made with.
"""

from __future__ import annotations

import re

ANSWER_PREFIX = "The answer to this problem is"

# Solver prompts: the user turn that follows the image(s). v1 keeps the instruction short, which the
# tiny demo model can afford; real backbones get the same sentence the teacher's solutions end with.
SOLVER_PROMPTS = {
    "v1": "{question}\nSolve step by step. End with: " + ANSWER_PREFIX + " ...",
}

STEP_RE = re.compile(r"^\s*Step\s+(\d+)\s*[:.]\s*(.*?)\s*$", re.IGNORECASE)


def solver_prompt(question: str, version: str) -> str:
    try:
        template = SOLVER_PROMPTS[version]
    except KeyError:
        raise ValueError(f"unknown solver prompt version {version!r}; known: {sorted(SOLVER_PROMPTS)}") from None
    return template.format(question=question)


def format_solution(steps: list[str], answer: str) -> str:
    lines = [f"Step {i}: {s}" for i, s in enumerate(steps, start=1)]
    return "\n".join(lines + [f"{ANSWER_PREFIX} {answer}."])


def parse_steps(response: str) -> list[str]:
    """The step texts of a path, in order; lines that are not 'Step n:' lines are ignored."""
    steps = []
    for line in response.splitlines():
        m = STEP_RE.match(line)
        if m:
            steps.append(m.group(2))
    return steps
