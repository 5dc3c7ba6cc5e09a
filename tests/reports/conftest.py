"""Fixtures for tests/reports: executed notebooks made in memory, with the kinds of
output the pipeline's reports hold (markdown, tables, text, errors, plots)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

#: A page loading a script, stylesheet or module from the network (as in test_review.py).
REMOTE_RESOURCE = r"""(?:src|href)\s*=\s*["']?https?://|url\(\s*["']?https?://|(?:import|from)\s*\(?\s*["']https?://"""


def png(width: int = 40, height: int = 30, color: str = "steelblue") -> str:
    """A real PNG (base64), as matplotlib leaves in a notebook."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def report_cells(*, tag_plot: bool = True) -> list[Any]:
    table = (
        '<table border="1" class="dataframe"><thead><tr><th></th><th>roc_auc</th></tr></thead>'
        "<tbody><tr><th>hgb</th><td>0.83</td></tr></tbody></table>"
    )
    return [
        new_markdown_cell("# Evaluate the candidates\n\nWhy this step exists."),
        new_code_cell("upstream = None", execution_count=1, metadata={"tags": ["parameters"]}),
        new_code_cell(
            "scores",
            execution_count=2,
            outputs=[
                new_output(
                    "execute_result",
                    data={"text/html": table, "text/plain": "hgb 0.83"},
                    execution_count=2,
                )
            ],
        ),
        new_markdown_cell("## How the models are right and wrong"),
        new_code_cell(
            "roc_plot()",
            execution_count=3,
            metadata={"tags": ["summary"]} if tag_plot else {},
            outputs=[
                new_output("display_data", data={"image/png": png(), "text/plain": "<Figure>"})
            ],
        ),
        new_code_cell(
            'print("done")',
            execution_count=4,
            outputs=[new_output("stream", name="stdout", text="done\n")],
        ),
    ]


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_notebook(path, cells=None)`` writes an executed notebook."""

    def make(path: Path | str, cells: list[Any] | None = None) -> Path:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(new_notebook(cells=cells if cells is not None else report_cells()), target)
        return target

    return make
