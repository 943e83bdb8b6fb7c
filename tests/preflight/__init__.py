"""Preflight tests (a package, so its conftest has a unique module name under --doctest-modules)."""
