"""The engine: connection, migrations, the writer, readers, the generic table layer, paging,
backup/swap/salvage, export/import. It knows no entity by name."""
