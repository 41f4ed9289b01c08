"""Text-to-SQL routing targets: the EllieSQL pipelines (`pipelines`)."""
