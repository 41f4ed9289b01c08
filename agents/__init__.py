"""Cost-aware agents on langgraph: only the modules a task needs, test-time scaling on demand."""
