"""Evaluation and reporting: a run's results as tables, figures and pages.

`summarize` (the stage-by-stage accuracy table), `report_tables` (what the figures draw and the CLI prints),
`figures`, `report` (the plots and gallery rules), `report_pages` (wide tables as pages of their own) and
`curves` (training curves and generation throughput across rounds)."""
