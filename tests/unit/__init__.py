"""Unit tests: no server of the stack."""
