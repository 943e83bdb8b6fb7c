"""Media probe and sample tests (a package: its conftest gets a unique name under --doctest-modules)."""
