"""Every limit of the Seedance 2.0 reference-to-video API, in one place.

Documented limits come from the seed API page (``shared/seed``) and the Oxen contract notes;
the few that are our own choice, or an upstream (BytePlus) limit that Oxen does not document,
say so. "MB" in the docs is read as 10**6 bytes, the stricter reading.

Example:
    >>> from seedance_prefect import limits
    >>> limits.MAX_FILES_TOTAL, limits.DURATIONS[:3]
    (12, ('auto', '4', '5'))
"""

from __future__ import annotations

MODEL_ID = "bytedance-seedance-2-0-reference-to-video"
DEFAULT_BASE_URL = "https://hub.oxen.ai/api"

# Enumerations (seed document, "profile A").
RESOLUTIONS = ("480p", "720p")
DURATIONS = ("auto", *(str(n) for n in range(4, 16)))
ASPECT_RATIOS = ("auto", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
RESPONSE_FORMATS = ("url", "b64_json")
NUM_GENERATIONS_MIN, NUM_GENERATIONS_MAX = 1, 4

# Defaults (seed document).
DEFAULT_RESOLUTION = "720p"
DEFAULT_DURATION = "auto"
DEFAULT_ASPECT_RATIO = "auto"
DEFAULT_GENERATE_AUDIO = True
DEFAULT_RESPONSE_FORMAT = "url"

# Reference media table.
MAX_IMAGES = 9
MAX_VIDEOS = 3
MAX_AUDIOS = 3
MAX_FILES_TOTAL = 12
MB = 1_000_000
IMAGE_MAX_BYTES = 30 * MB  # each
VIDEO_TOTAL_MAX_BYTES = 50 * MB  # all videos together, strictly less than
AUDIO_MAX_BYTES = 15 * MB  # each
VIDEO_MIN_TOTAL_SECONDS = 2.0
VIDEO_MAX_TOTAL_SECONDS = 15.0
AUDIO_MAX_TOTAL_SECONDS = 15.0
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")  # Pillow format names
VIDEO_CONTAINERS = ("mp4", "mov")  # ISO-BMFF family as probed by content
AUDIO_CONTAINERS = ("mp3", "wav")
# "Resolution ~480p to ~720p": MODEL v1 spells it as between 640x640 and 834x1112 pixels.
VIDEO_MIN_PIXELS = 409_600
VIDEO_MAX_PIXELS = 927_408
# Upstream (BytePlus / ComfyUI) image limits, not documented by Oxen.
IMAGE_MIN_SIDE = 300
IMAGE_MAX_SIDE = 6000
IMAGE_MIN_ASPECT = 0.4
IMAGE_MAX_ASPECT = 2.5

# Our own choices where the docs are silent.
PROMPT_MAX_CHARS = 8000  # long prompts are refused locally rather than by a paid call
URI_SCHEMES = ("https", "http", "data")

# Pricing: $0.40 per generated second (WALK page as created 2026-04-14), audio or not.
PRICE_PER_SECOND_USD = 0.40
AUTO_DURATION_ASSUMED_SECONDS = 15  # "auto" is costed at the maximum
