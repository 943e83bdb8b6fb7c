"""Audio references are rewritten by PyAV and every result is checked by probing it."""

from __future__ import annotations

import array
import wave

from seedance_prefect import limits
from seedance_prefect.media.probe import probe_path
from seedance_prefect.references.preprocess import prepare
from tests.references.conftest import request_for
from tests.references.refkit import fixes, output


def _prepare(cache, media, *uris):
    return prepare(request_for(input_images=[media.s("jpeg_ok")], input_audios=list(uris)), cache_dir=cache)


def test_a_20_s_wav_is_trimmed_to_15_s(media, shared_cache):
    prepared = _prepare(shared_cache, media, media.s("wav20"))
    info = probe_path(output(prepared, "input_audios[0]"))
    assert (info.container, info.audio_codec, info.duration, info.sample_rate, info.channels) == (
        "wav", "pcm_s16le", 15.0, 44100, 2,
    )  # fmt: skip
    assert fixes(prepared) == [("input_audios[0]", "trim")]


def test_an_mp3_is_trimmed_as_mp3(media, shared_cache):
    prepared = _prepare(shared_cache, media, media.s("mp3_20s"))
    info = probe_path(output(prepared, "input_audios[0]"))
    assert info.container == "mp3" and info.audio_codec == "mp3"
    assert 14.9 <= info.duration <= limits.AUDIO_MAX_TOTAL_SECONDS + 0.02


def test_combined_audio_is_cut_from_the_last_file(media, shared_cache):
    prepared = _prepare(shared_cache, media, media.s("wav10"), media.s("wav8"))
    first, second = (probe_path(output(prepared, f"input_audios[{i}]")) for i in (0, 1))
    assert (first.duration, second.duration) == (10.0, 5.0)
    assert output(prepared, "input_audios[0]") == media["wav10"]  # untouched
    assert (second.sample_rate, second.channels) == (22050, 1)


def test_flac_is_converted_to_wav(media, shared_cache):
    prepared = _prepare(shared_cache, media, media.s("flac"))
    info = probe_path(output(prepared, "input_audios[0]"))
    assert (info.container, info.duration) == ("wav", 2.0)
    assert prepared.request.input_audios[0].startswith("data:audio/wav;base64,")


def test_96_khz_is_resampled_when_rewritten(media, shared_cache):
    prepared = _prepare(shared_cache, media, media.s("wav96k") + "#t=0.5,2.5")
    info = probe_path(output(prepared, "input_audios[0]"))
    assert (info.sample_rate, info.duration) == (48000, 2.0)
    assert [f.what for f in prepared.fixes] == ["trim", "resample"]


def test_the_sound_of_a_video_given_as_audio_is_extracted(media, shared_cache):
    prepared = _prepare(shared_cache, media, media.s("talking_clip"))
    out = output(prepared, "input_audios[0]")
    info = probe_path(out)
    assert (info.kind, info.container, info.has_video) == ("audio", "wav", False)
    assert abs(info.duration - 3.0) < 0.05
    with wave.open(str(out)) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
    assert max(abs(v) for v in samples) > 1000  # the tone survived, not silence
