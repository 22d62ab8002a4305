"""The archiver: follows a Kafka topic and writes its records, losslessly and crash-safely, into an archive."""

from pyrostore.archiver.config import ArchiverConfig
from pyrostore.archiver.runner import Archiver

__all__ = ["Archiver", "ArchiverConfig"]
