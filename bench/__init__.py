"""Benchmarks for pm-agent: `python -m bench writes|rpc|cli [--runs N] [--quick]`."""
