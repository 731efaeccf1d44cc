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
    # The row's text is the whole prompt (ORM training rows carry the ORM prompt in `question`).
    "raw": "{question}",
}
RAW_PROMPT_VERSION = "raw"

# A "Step n: ..." line; group 2 is the step's text, with trailing whitespace (parse_steps strips it): a lazy
# `(.*?)\s*$` would backtrack over a long run of spaces. STEP_PATTERN is the same for polars (Rust's regex
# engine is linear whatever the pattern).
STEP_RE = re.compile(r"^\s*Step\s+(\d+)\s*[:.]\s*(.*)$", re.IGNORECASE)
STEP_PATTERN = r"^\s*Step\s+(\d+)\s*[:.]\s*(.*?)\s*$"


# Teacher and ORM prompts (paper: GPT-4o distils and reflects; a VLM judges in JSON). A version is frozen
# once used: a changed wording gets a new version, so cached responses and recorded rows stay meaningful.
FORMAT_RULE = "Write each step on its own line as 'Step n: ...' and end with: " + ANSWER_PREFIX + " <answer>."
DISTILL_PROMPTS = {
    "v1": "You are an expert math teacher. Solve this visual math problem step by step, reading the values "
    "from the image.\n" + FORMAT_RULE + "\nQuestion: {question}",
}
REFLECT_PROMPTS = {
    "v1": "You are an expert math teacher. Below is a visual math problem and a reasoning path whose final "
    "answer is wrong. A reviewer says the first error is in step {error_step}: {error_analysis}\n"
    "The reviewer's analysis may be questionable, but the answer of the path is surely wrong. Rewrite the "
    "path: keep the correct steps, fix the error, and reason on to the right answer.\n" + FORMAT_RULE + "\n"
    "Question: {question}\nWrong reasoning path:\n{wrong_path}",
}
# ORM training data: the teacher annotates a wrong path with the paper's JSON (GPT-4o in the paper).
ANNOTATE_PROMPTS = {
    "v1": "You are an expert math teacher. Below is a visual math problem, its reference answer and a "
    "reasoning path whose final answer is wrong. Find the first wrong step and say why it is wrong and how to "
    "fix it. Reply with JSON only: "
    '{{"status": "WRONG", "error_step": the number of the first wrong step, "error_analysis": why that step '
    'is wrong, "improvement_suggestion": how to fix it}}\n'
    "Question: {question}\nReference answer: {answer}\nReasoning path:\n{path}",
}
# reflection.feedback: teacher - the teacher writes the feedback itself (paper Table 3, "teacher-written
# feedback"): first this request, then the reflection prompt with its error step and analysis.
CRITIQUE_PROMPTS = {
    "v1": "You are an expert math teacher. Below is a visual math problem and a reasoning path whose final "
    "answer is surely wrong. Find the first wrong step and say why it is wrong. Reply with JSON only: "
    '{{"error_step": the number of the first wrong step, "error_analysis": why that step is wrong}}\n'
    "Question: {question}\nReasoning path:\n{wrong_path}",
}
# reflection.feedback: none - the same task without the ORM's error step and analysis.
REFLECT_NO_FEEDBACK_PROMPTS = {
    "v1": "You are an expert math teacher. Below is a visual math problem and a reasoning path whose final "
    "answer is surely wrong. Find the first wrong step, keep the correct steps before it, and reason on to "
    "the right answer.\n" + FORMAT_RULE + "\nQuestion: {question}\nWrong reasoning path:\n{wrong_path}",
}
ORM_PROMPTS = {
    "v1": "You are a strict grader of visual math solutions. Judge the reasoning path against the reference "
    "answer and the image. Reply with JSON only: "
    '{{"status": "CORRECT" or "WRONG", "error_step": the number of the first wrong step or null, '
    '"error_analysis": why that step is wrong, "improvement_suggestion": how to fix it}}\n'
    "Question: {question}\nReference answer: {answer}\nReasoning path:\n{path}",
    # A short version for the tiny demo ORM, whose byte-level tokenizer makes v1 ~300 tokens.
    "brief": "Judge the path against the reference answer; reply with the JSON verdict.\n"
    "Question: {question}\nReference answer: {answer}\nPath:\n{path}",
    # The reference answer after the path: next to the path's final answer and to where the verdict is
    # written, so that a small ORM compares two numbers a few tokens apart.
    "answer_last": "Judge the path against the reference answer; reply with the JSON verdict.\n"
    "Question: {question}\nPath:\n{path}\nReference answer: {answer}",
}

# Answer extraction by an LLM where the rules find no answer (as the official MathVista and MathVerse scripts
# and lmms-eval do with GPT-4): a few worked examples, then the question and the model's response.
EXTRACT_PROMPTS = {
    "v1": "Read each model response and write only its final answer, as a number, an option letter or a "
    "short expression; write NONE if the response gives no answer.\n\n"
    "Question: What is the area of the rectangle? Choices: (A) 12 (B) 15\n"
    "Model response: Multiplying the sides 3 and 5 gives 15, so option B.\nExtracted answer: B\n\n"
    "Question: How many dots are there?\n"
    "Model response: I count the rows: 4, 4 and 3, which makes eleven in all.\nExtracted answer: 11\n\n"
    "Question: What is the slope of the line?\n"
    "Model response: The line rises one unit for every two units to the right.\nExtracted answer: 1/2\n\n"
    "Question: What is x?\nModel response: I cannot read the figure.\nExtracted answer: NONE\n\n"
    "Question: {question}\nModel response: {response}\nExtracted answer:",
}
NO_ANSWER = "NONE"


def _template(table: dict[str, str], kind: str, version: str) -> str:
    try:
        return table[version]
    except KeyError:
        raise ValueError(f"unknown {kind} prompt version {version!r}; known: {sorted(table)}") from None


def distill_prompt(question: str, version: str) -> str:
    return _template(DISTILL_PROMPTS, "distill", version).format(question=question)


def reflect_prompt(
    question: str,
    wrong_path: str,
    error_step: int | None,
    error_analysis: str | None,
    version: str,
    feedback: bool = True,
) -> str:
    """The reflection request; without feedback (reflection.feedback: none) the teacher finds the error."""
    if not feedback:
        return _template(REFLECT_NO_FEEDBACK_PROMPTS, "reflect", version).format(
            question=question, wrong_path=wrong_path
        )
    return _template(REFLECT_PROMPTS, "reflect", version).format(
        question=question,
        wrong_path=wrong_path,
        error_step=error_step if error_step is not None else "(not located)",
        error_analysis=error_analysis or "(no analysis given)",
    )


def critique_prompt(question: str, wrong_path: str, version: str) -> str:
    return _template(CRITIQUE_PROMPTS, "critique", version).format(question=question, wrong_path=wrong_path)


def parse_critique(text: str) -> tuple[int | None, str | None]:
    """The teacher's own (error_step, error_analysis) from its critique reply; (None, None) when it is not
    the JSON asked for (the reflection prompt then says the step was not located)."""
    import json

    start, end = text.find("{"), text.rfind("}")
    try:
        obj = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return None, None
    step = obj.get("error_step")
    step = step if isinstance(step, int) and not isinstance(step, bool) and step >= 1 else None
    analysis = obj.get("error_analysis")
    return step, analysis if isinstance(analysis, str) and analysis.strip() else None


def annotate_prompt(question: str, answer: str, path: str, version: str) -> str:
    return _template(ANNOTATE_PROMPTS, "annotate", version).format(question=question, answer=answer, path=path)


def orm_prompt(question: str, answer: str, path: str, version: str) -> str:
    return _template(ORM_PROMPTS, "ORM", version).format(question=question, answer=answer, path=path)


def extract_prompt(question: str, response: str, version: str) -> str:
    return _template(EXTRACT_PROMPTS, "extract", version).format(question=question, response=response)


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
            steps.append(m.group(2).rstrip())
    return steps
