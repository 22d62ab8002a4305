"""Iceberg: committed segments registered, as they are, as the data files of an Iceberg table."""
