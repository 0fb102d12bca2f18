"""Measuring a release: metrics, robustness, heatmap localisation, selective prediction, reports and plots."""
