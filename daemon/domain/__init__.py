"""The domain: one module (or small package) per aggregate, each holding its row Structs (also
the wire types), params, the rules that are really its own, its few special queries and its
RPC handlers (`methods`, bound to the runtime's `App` at start; the list is in
daemon/domain/modules.py)."""
