"""Reporting: aggregation and statistics, rich tables, text/HTML formats, plots, MLflow tracking."""
