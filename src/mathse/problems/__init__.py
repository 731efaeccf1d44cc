"""Data in: the problems the loop learns from and is evaluated on.

`data` (procedural visual-math problems), `sources` (training problems from files), `benchmarks` (importers of
published benchmarks, contamination), `validate` (problem-table checks, quarantine) and the generic format's
JSON schema (`generic_problem.schema.json`)."""
