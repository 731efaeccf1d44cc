"""Judging and teaching: what decides whether a solution is right, and what supplies better ones.

`grading` (answer extraction and checking), `checks` (bounded answer checks), `scoring` (official benchmark
rules), `extractor` (LLM answer extractor), `orm` (the outcome reward model: rule and model judges),
`orm_train` (the generative ORM's data, training and evaluation), `teacher` (distillation, reflections,
error annotations) and `api` (the OpenAI-compatible client of the teacher, judge and extractor)."""
