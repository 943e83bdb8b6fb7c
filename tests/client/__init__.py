"""Tests of seedance_prefect.client (a package, so its conftest does not clash with tests/conftest.py)."""
