"""Steps 6-7, verify and deliver: PyAV checks, safe names, sidecars and storage targets (no Prefect).

- :mod:`.verify`: the checks of a downloaded video against its request.
- :mod:`.folder`: safe names and delivery to a local folder with a JSON sidecar.
- :mod:`.targets`: where videos go (a folder, an fsspec URL, a Prefect storage block).

Example:
    >>> from seedance_prefect.delivery import safe_name
    >>> safe_name("My video!")
    'My_video'
"""

from .folder import DeliveredVideo, default_name, deliver_to_folder, safe_name, sha256_file

__all__ = ["DeliveredVideo", "default_name", "deliver_to_folder", "safe_name", "sha256_file"]
