"""pm-agent's client side: a small synchronous client, an asyncio client and the `pm` CLI.

Kept empty on purpose: `pm status` imports this package and must start in a few milliseconds.
"""
