"""Tracing: record one forward pass at the torch-function level."""
