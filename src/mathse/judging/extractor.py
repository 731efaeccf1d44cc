"""The optional LLM answer extractor (eval.answer_extractor: openai) behind an OpenAI-compatible endpoint.

Used by scoring only for responses where the benchmark's rules find no answer, as the official MathVista and
MathVerse scripts and lmms-eval use GPT-4 for extraction. Requests go through the same client as the
teacher (retries, concurrency limit, on-disk cache, key from the environment only).
"""

from __future__ import annotations

from mathse.config import ExtractorConfig
from mathse.judging.api import ChatClient
from mathse.prompts import NO_ANSWER, extract_prompt


class LlmExtractor:
    def __init__(self, cfg: ExtractorConfig, client: ChatClient | None = None) -> None:
        self.cfg = cfg
        self.client = client or ChatClient(cfg.openai)
        self.name = f"{cfg.openai.model}@{cfg.prompt_version}"

    def __call__(self, items: list[tuple[dict, str]]) -> list[str | None]:
        """One answer per (problem, response); None where the extractor says there is none."""
        bodies = [
            self.client.body(extract_prompt(problem["question"], response, self.cfg.prompt_version), [], seed=0)
            for problem, response in items
        ]
        answers = []
        for c in self.client.complete_all(bodies, desc=f"answer extractor {self.name}"):
            lines = (c.text or "").strip().splitlines()
            text = lines[0].strip() if lines else ""  # the answer line; anything after it is ignored
            answers.append(None if not text or text.upper().rstrip(".") == NO_ANSWER else text)
        return answers


def make_extractor(cfg: ExtractorConfig) -> LlmExtractor | None:
    return LlmExtractor(cfg) if cfg.backend == "openai" else None
