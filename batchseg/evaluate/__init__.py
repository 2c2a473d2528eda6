"""Scoring stores against ground truth: metrics (pure numpy), truth matching, the job."""
