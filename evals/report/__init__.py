"""Cost reports (Markdown + self-contained HTML with plots) rebuilt from run logs."""

from evals.report.build import ReportFiles, write_report

__all__ = ["ReportFiles", "write_report"]
