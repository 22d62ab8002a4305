"""Tests against the real servers of the stack."""
