"""Storage: the group-commit writer, read connections, migrations, one module per table group."""
