"""Tables the report shows as pages of their own (self-contained HTML, as the galleries): wide tables that
would crowd the report's first page, such as the teacher's and the judge's API use per round."""

from __future__ import annotations

import html

import polars as pl

from mathse.artifacts import empty, read_table

_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px} p{max-width:60em}
.wrap{overflow-x:auto} table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0} .text{text-align:left}
"""

COST_COLUMNS = [
    "round",
    "rule",
    "backend",
    "model",
    "requests",
    "retries",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "failures",
    "seconds",
]


def table_page(title: str, intro: str, table: pl.DataFrame) -> str:
    """An HTML page with a heading, a paragraph and `table` (numbers right-aligned, text left)."""
    esc = html.escape
    text = {c for c, t in table.schema.items() if t == pl.String}
    head = "".join(f'<th class="text">{esc(c)}</th>' if c in text else f"<th>{esc(c)}</th>" for c in table.columns)
    rows = []
    for row in table.iter_rows(named=True):
        cells = []
        for c, v in row.items():
            shown = "-" if v is None or v == "" else f"{v:.1f}" if isinstance(v, float) else str(v)
            cells.append(f'<td class="text">{esc(shown)}</td>' if c in text else f"<td>{esc(shown)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "\n".join(rows) if rows else f'<tr><td colspan="{table.width}">none</td></tr>'
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(title)}</title><style>{_CSS}</style>'
        f"</head><body>\n<h1>{esc(title)}</h1>\n<p>{esc(intro)}</p>\n"
        f'<div class="wrap"><table id="table"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>'
        "\n</body></html>\n"
    )


def cost_page(cost_paths: list[str]) -> str:
    """The teacher's and the judge's API use per round and rule (all zeros for local backends)."""
    cost = pl.concat([read_table(p, "api_cost") for p in cost_paths] or [empty("api_cost")])
    intro = (
        "Requests sent (retries included), completions served from the response cache, and the tokens paid for, "
        "per round and rule (distill, judge, reflect; annotate: the ORM's training labels). Local backends "
        "(programmatic teacher, rule or local model judge) cost nothing and show zeros."
    )
    return table_page("Teacher and judge API use per round", intro, cost.sort("round", "rule").select(COST_COLUMNS))
