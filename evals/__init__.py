"""One evaluation layer: metrics, benchmark loaders, the runner and cost reports."""
