"""The database layer: connections, migrations, the single writer, readers, and all SQL."""
