"""Numbered SQL migrations, shipped as package data and found with importlib.resources."""
