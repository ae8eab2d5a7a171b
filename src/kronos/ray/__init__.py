"""Forecasts and evaluations of many series on a Ray cluster."""
