"""The RPC methods: params and result types, and handlers that call the services."""
