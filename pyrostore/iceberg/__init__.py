"""Iceberg: committed segments registered, as they are, as the data files of an Iceberg table."""

URI_CATALOG_NAME = "pyrostore"
"""The name of a catalog given by its URI (a SQL catalog keeps tables per catalog name; engines must use it)."""
