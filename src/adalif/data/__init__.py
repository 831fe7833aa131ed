"""Datasets: the embedded digits (static and event-camera), and event-to-frame integration."""
