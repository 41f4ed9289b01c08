"""Text-to-SQL routing between the EllieSQL pipelines (`routed`); the pipelines themselves
are part of the Spider benchmark (`evals.benchmarks.spider.pipelines`)."""
