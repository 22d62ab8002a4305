"""The test suite; a package, so that test modules in ``unit/`` and ``integration/`` may share a file name."""
