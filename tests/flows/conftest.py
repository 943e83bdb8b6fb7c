"""Flow tests use the shared fixtures of ``tests/conftest.py``: prefect_server, emulator, out_dir."""
