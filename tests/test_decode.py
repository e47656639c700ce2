"""Streamed decoding: every format, exact timing, mean down-mix, seamless resampling, bad inputs."""

from __future__ import annotations

import dataclasses
import errno
import os
import threading
import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf

from ocml.pipeline import decode
from ocml.pipeline.decode import AudioInfo, probe, stream
from ocml.pipeline.errors import (
    BadSampleRate,
    InputEmpty,
    InputMissing,
    InputNotAFile,
    InputTooShort,
    InputTruncated,
    InputUnreadable,
    InvalidSamples,
    NoAudioTrack,
    ParamsError,
    TransientIOError,
)
from tests.media import (
    encode,
    sine,
    speechlike,
    tone_burst,
    write_soundfile,
    write_video_with_audio,
    write_video_without_audio,
    write_wav,
)

OUT = 16000
ONSET = 12.340


def decoded(path, **kwargs) -> np.ndarray:
    return np.concatenate(list(stream(path, **kwargs)))


def peak_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def first_above(x: np.ndarray, threshold: float = 0.1) -> float:
    above = np.flatnonzero(np.abs(x) > threshold)
    assert len(above), "no sample above the threshold"
    return above[0] / OUT


# name → (writer(path, stereo float32 signal, sr), one codec frame in native samples)
WRITERS = {
    "wav16.wav": (lambda p, x, sr: write_wav(p, x, sr, subtype="PCM_16"), 0),
    "wav24.wav": (lambda p, x, sr: write_wav(p, x, sr, subtype="PCM_24"), 0),
    "wav32.wav": (lambda p, x, sr: write_wav(p, x, sr, subtype="PCM_32"), 0),
    "wavfloat.wav": (lambda p, x, sr: write_wav(p, x, sr, subtype="FLOAT"), 0),
    "a.flac": (lambda p, x, sr: write_soundfile(p, x, sr), 0),
    "sf_vorbis.ogg": (lambda p, x, sr: write_soundfile(p, x, sr, subtype="VORBIS"), 0),
    "sf_opus.ogg": (lambda p, x, sr: write_soundfile(p, x, sr, subtype="OPUS"), 960),
    "sf.mp3": (lambda p, x, sr: write_soundfile(p, x, sr), 1152),
    "av_vorbis.ogg": (lambda p, x, sr: encode(p, x, sr, codec="vorbis"), 0),
    "av_opus.opus": (lambda p, x, sr: encode(p, x, sr, codec="opus"), 960),
    "av.mp3": (lambda p, x, sr: encode(p, x, sr, codec="mp3"), 1152),
    "aac.mp4": (lambda p, x, sr: encode(p, x, sr, codec="aac"), 1024),
    "aac.m4a": (lambda p, x, sr: encode(p, x, sr, codec="aac"), 1024),
    "aac.mov": (lambda p, x, sr: encode(p, x, sr, codec="aac"), 1024),
    "aac.mkv": (lambda p, x, sr: encode(p, x, sr, codec="aac"), 1024),
    "flac.mkv": (lambda p, x, sr: encode(p, x, sr, codec="flac"), 0),
    "opus.webm": (lambda p, x, sr: encode(p, x, sr, codec="opus"), 960),
    "opus.mkv": (lambda p, x, sr: encode(p, x, sr, codec="opus"), 960),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_format_decodes_to_the_right_length_and_tone(tmp_path, name):
    sr = 48000
    write, frame = WRITERS[name]
    x = np.repeat(sine(sr, 2.0, freq=440.0, amplitude=0.5)[:, None], 2, axis=1)
    path = write(tmp_path / name, x, sr)
    y = decoded(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 2.0 * OUT) <= max(1, frame * OUT // sr)
    middle = y[OUT // 2 : 3 * OUT // 2]
    assert abs(peak_frequency(middle, OUT) - 440.0) < 2.0
    assert rms(middle) == pytest.approx(0.5 / np.sqrt(2), rel=0.06)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_probe_reports_the_audio(tmp_path, name):
    path = WRITERS[name][0](tmp_path / name, np.zeros((48000, 2), np.float32), 48000)
    info = probe(path)
    assert info == AudioInfo(str(path), info.duration, 48000, 2, info.codec, info.container, False)
    assert info.duration == pytest.approx(1.0, abs=0.03)
    assert info.codec and info.container
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.duration = 2.0


def test_probe_names_codec_container_and_video(tmp_path):
    x = sine(44100, 1.0)
    wav = probe(write_wav(tmp_path / "a.wav", x, 44100))
    assert (wav.codec, wav.container, wav.channels, wav.duration) == ("pcm_16", "wav", 1, 1.0)
    video = probe(write_video_with_audio(tmp_path / "v.mp4", x, 44100))
    assert (video.codec, video.has_video, video.channels, video.sample_rate) == (
        "aac",
        True,
        1,
        44100,
    )
    assert "mp4" in video.container


def test_downmix_is_the_channel_mean_in_float(tmp_path):
    sr = 48000
    tone = sine(sr, 1.0, freq=300.0, amplitude=0.8)
    channels = np.stack(
        [
            tone,
            -0.5 * tone,
            np.full_like(tone, 0.25),
            np.zeros_like(tone),
            0.1 * tone,
            tone[::-1],
            np.full_like(tone, -0.125),
            0.3 * tone,
        ],
        axis=1,
    )
    path = write_wav(tmp_path / "eight.wav", channels, sr, subtype="FLOAT")
    assert probe(path).channels == 8
    y = decoded(path, sample_rate=sr)
    np.testing.assert_allclose(y, channels.mean(axis=1), atol=1e-7)


def test_stereo_downmix_is_not_ffmpegs_louder_mix(tmp_path):
    """One silent channel halves the level: mean (L+R)/2, not FFmpeg's (L+R)/√2."""
    sr = 48000
    left = sine(sr, 2.0, freq=440.0, amplitude=0.5)
    path = encode(
        tmp_path / "left.mp4",
        np.stack([left, np.zeros_like(left)], axis=1),
        sr,
        codec="aac",
        bitrate=192000,
    )
    y = decoded(path)[OUT // 2 : 3 * OUT // 2]
    assert rms(y) == pytest.approx(0.25 / np.sqrt(2), rel=0.03)


@pytest.mark.parametrize(
    "name,sr",
    [
        ("a.flac", 44100),
        ("aac.mkv", 48000),
        ("aac.mp4", 22050),
        ("sf.mp3", 32000),
        ("wavfloat.wav", 16000),
        ("sf_vorbis.ogg", 44100),
        ("sf_opus.ogg", 48000),
        ("opus.webm", 48000),
    ],
)
def test_resampling_is_seamless_for_any_block_size(tmp_path, name, sr):
    x = np.stack([sine(sr, 3.0, freq=1234.5), sine(sr, 3.0, freq=97.0)], axis=1)
    path = WRITERS[name][0](tmp_path / name, x, sr)
    whole = decoded(path, block_seconds=30.0)
    blocks = list(stream(path, block_seconds=0.1))
    assert len(blocks) > 20
    assert all(len(b) <= 0.1 * OUT + 2048 for b in blocks)
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    assert len(decoded(path, block_seconds=0.37)) == len(whole)


@pytest.mark.parametrize("name", ["wav24.wav", "a.flac", "sf_vorbis.ogg", "sf_opus.ogg"])
def test_soundfile_streaming_equals_one_whole_file_read(tmp_path, name):
    """libsndfile read in many calls gives what one whole-file read gives (not so for its MP3)."""
    x = np.stack([sine(48000, 6.0, freq=440.0), sine(48000, 6.0, freq=3000.0)], axis=1)
    path = WRITERS[name][0](tmp_path / name, x, 48000)
    whole = sf.read(str(path), dtype="float32", always_2d=True)[0]
    np.testing.assert_allclose(
        decoded(path, sample_rate=48000, block_seconds=0.5), whole.mean(axis=1), atol=1e-6
    )


def test_mp3_is_decoded_right_across_many_reads(tmp_path):
    x = np.stack([sine(48000, 6.0, freq=440.0), sine(48000, 6.0, freq=3000.0)], axis=1)
    path = write_soundfile(tmp_path / "a.mp3", x, 48000)
    whole = sf.read(str(path), dtype="float32", always_2d=True)[0].mean(axis=1)
    y = decoded(path, sample_rate=48000, block_seconds=0.5)
    assert len(y) == len(whole)
    np.testing.assert_allclose(y, whole, atol=1e-4)


def test_total_length_is_the_resampled_native_length(tmp_path):
    path = write_wav(tmp_path / "odd.wav", sine(44100, 1.0)[:44099], 44100)
    assert len(decoded(path)) == round(44099 * OUT / 44100)
    assert len(decoded(path, sample_rate=8000)) == round(44099 * 8000 / 44100)


TIMED = {
    "aac.mp4": lambda p, x, sr: encode(p, x, sr, codec="aac"),
    "aac.m4a": lambda p, x, sr: encode(p, x, sr, codec="aac"),
    "av.mp3": lambda p, x, sr: encode(p, x, sr, codec="mp3"),
    "sf.mp3": lambda p, x, sr: write_soundfile(p, x, sr),
    "opus.webm": lambda p, x, sr: encode(p, x, sr, codec="opus"),
    "opus.opus": lambda p, x, sr: encode(p, x, sr, codec="opus"),
    "a.flac": lambda p, x, sr: write_soundfile(p, x, sr),
}


@pytest.mark.parametrize("name", sorted(TIMED))
def test_tone_burst_is_found_at_its_exact_time(tmp_path, name):
    x = tone_burst(48000, 14.0, start=ONSET, length=1.0, freq=1000.0, channels=2)
    path = TIMED[name](tmp_path / name, x, 48000)
    assert first_above(decoded(path)) == pytest.approx(ONSET, abs=0.010)


@pytest.mark.parametrize("name", ["late.mp4", "late.mkv", "late.mov"])
def test_audio_starting_after_the_video_is_placed_by_timestamp(tmp_path, name):
    x = tone_burst(48000, 13.0, start=ONSET, length=0.5, channels=2)
    path = write_video_with_audio(tmp_path / name, x, 48000, audio_delay=1.5)
    y = decoded(path)
    assert first_above(y) == pytest.approx(1.5 + ONSET, abs=0.010)
    assert not np.any(y[: OUT * 14 // 10])


def test_dropped_audio_packets_leave_silence_and_keep_sync(tmp_path):
    """Audio missing from 3 s to 5 s (timestamps jump) is filled with zeros, not closed up."""
    sr = 48000
    x = tone_burst(sr, 14.0, start=ONSET, length=1.0, channels=2) + np.repeat(
        sine(sr, 14.0, freq=200.0, amplitude=0.05)[:, None], 2, axis=1
    )
    path = tmp_path / "gap.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        audio = out.add_stream("aac", rate=sr, layout="stereo")
        for start in [*range(0, 3 * sr, 1024), *range(5 * sr, len(x), 1024)]:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[start : start + 1024].T), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = sr, start, Fraction(1, sr)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    y = decoded(path)
    assert first_above(y) == pytest.approx(ONSET, abs=0.010)
    assert rms(y[int(3.1 * OUT) : int(4.9 * OUT)]) < 1e-4
    assert rms(y[int(5.1 * OUT) : int(6.0 * OUT)]) == pytest.approx(0.05 / np.sqrt(2), rel=0.1)


# --- bad inputs ----------------------------------------------------------------------------------


def refused(path, error):
    """Both probe and stream refuse ``path`` with ``error``, naming the file."""
    for call in (probe, decoded):
        with pytest.raises(error) as caught:
            call(path)
        assert type(caught.value) is error
        assert str(path) in str(caught.value)


def png_bytes() -> bytes:
    frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = 8, 8, "rgb24"
    return b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None))


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.wav", InputMissing)


def test_directory(tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    refused(tmp_path / "dir.mp4", InputNotAFile)


def test_fifo_is_not_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    refused(tmp_path / "pipe.wav", InputNotAFile)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    refused(tmp_path / "empty.mp4", InputEmpty)


@pytest.mark.parametrize(
    "name", ["noise.wav", "noise.mp3", "noise.mp4", "noise.flac", "noise.webm"]
)
def test_random_bytes(tmp_path, name):
    (tmp_path / name).write_bytes(np.random.default_rng(7).bytes(40000))
    refused(tmp_path / name, InputUnreadable)


@pytest.mark.parametrize("name", ["notes.wav", "notes.mp3", "notes.mp4", "notes.ogg"])
def test_text_with_an_audio_extension(tmp_path, name):
    (tmp_path / name).write_text("Lecture 17: notes for the exam.\n" * 50)
    refused(tmp_path / name, InputUnreadable)


def test_png_renamed_mp4(tmp_path):
    (tmp_path / "image.mp4").write_bytes(png_bytes())
    refused(tmp_path / "image.mp4", InputUnreadable)


@pytest.mark.parametrize("name", ["a.wav", "a.flac", "a.mp4", "a.webm"])
def test_header_only_file(tmp_path, name):
    whole = WRITERS[
        {"a.wav": "wav16.wav", "a.mp4": "aac.mp4", "a.webm": "opus.webm"}.get(name, name)
    ][0](tmp_path / ("full" + name), np.zeros((48000, 2), np.float32), 48000)
    (tmp_path / name).write_bytes(whole.read_bytes()[:30])
    refused(tmp_path / name, InputUnreadable)


def test_mp4_truncated_before_its_index(tmp_path):
    whole = encode(tmp_path / "whole.mp4", sine(48000, 5.0), 48000, codec="aac")
    (tmp_path / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    refused(tmp_path / "cut.mp4", InputUnreadable)


def write_cut(tmp_path, name: str, fraction: float = 0.6):
    """A 4 s stereo 440 Hz file of the kind ``name`` names, cut to ``fraction`` of its bytes."""
    sr = 48000
    x = np.repeat(sine(sr, 4.0, freq=440.0)[:, None], 2, axis=1)
    full = tmp_path / ("full_" + name)
    if name == "cut.mp4":
        with av.open(str(full), "w", format="mp4", options={"movflags": "faststart"}) as out:
            stream_ = out.add_stream("aac", rate=sr, layout="stereo")
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x.T), format="fltp", layout="stereo"
            )
            frame.sample_rate = sr
            for packet in stream_.encode(frame) + stream_.encode(None):
                out.mux(packet)
    else:
        WRITERS[CUT_FROM[name]][0](full, x, sr)
    data = full.read_bytes()
    (tmp_path / name).write_bytes(data[: int(len(data) * fraction)])
    return tmp_path / name


CUT_FROM = {
    "cut.wav": "wav16.wav",
    "cut.flac": "a.flac",
    "cut.webm": "opus.webm",
    "cut-lame-xing.mp3": "sf.mp3",
    "cut-ffmpeg-info.mp3": "av.mp3",
    "cut-vorbis.ogg": "sf_vorbis.ogg",
    "cut-ffmpeg-vorbis.ogg": "av_vorbis.ogg",
    "cut-opus.ogg": "sf_opus.ogg",
    "cut-ffmpeg.opus": "av_opus.opus",
}
"""A cut-off file's name → the `WRITERS` entry that writes it whole (cut.mp4 is made apart)."""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", [*(n for n in CUT_FROM if n != "cut.flac"), "cut.mp4"])
@pytest.mark.parametrize("fraction", [0.2, 0.6])
def test_truncated_file_is_refused(tmp_path, name, fraction):
    """Decision: a file cut short is refused, never segmented as if it ended early."""
    with pytest.raises(InputTruncated, match="truncated") as caught:
        decoded(write_cut(tmp_path, name, fraction))
    assert caught.value.code == "input_truncated"


def test_a_truncated_flac_is_refused_as_truncated_or_corrupt(tmp_path):
    """libsndfile loses sync where a FLAC is cut, as it would at a corrupt frame: which of the
    two it was cannot be told, so the file is refused as unreadable."""
    with pytest.raises(InputUnreadable, match="truncated or corrupt"):
        decoded(write_cut(tmp_path, "cut.flac"))


@pytest.mark.parametrize("name", ["sf_vorbis.ogg", "av_opus.opus", "sf.mp3", "av.mp3"])
def test_an_ogg_or_mp3_that_states_its_length_is_refused_when_opened(tmp_path, name):
    """Ogg and MP3 with a Xing/Info header show a cut of any size before decoding."""
    write, _ = WRITERS[name]
    whole = write(tmp_path / name, np.repeat(sine(48000, 4.0)[:, None], 2, axis=1), 48000)
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(whole.read_bytes()[:-100])

    assert probe(whole).duration > 3.9
    with pytest.raises(InputTruncated, match="truncated"):
        probe(cut)


def test_an_ogg_cut_at_a_page_boundary_is_refused(tmp_path):
    whole = write_soundfile(tmp_path / "whole.ogg", sine(48000, 8.0), 48000, subtype="VORBIS")
    data = whole.read_bytes()
    last_page = data.rfind(b"OggS")
    (tmp_path / "cut.ogg").write_bytes(data[:last_page])

    with pytest.raises(InputTruncated, match="end-of-stream"):
        decoded(tmp_path / "cut.ogg")


def test_bytes_after_an_oggs_last_page_do_not_count_as_a_cut(tmp_path):
    whole = write_soundfile(tmp_path / "whole.ogg", sine(48000, 2.0), 48000, subtype="VORBIS")
    tagged = tmp_path / "tagged.ogg"
    tagged.write_bytes(whole.read_bytes() + b"TAG" + bytes(125))

    assert abs(len(decoded(tagged)) - 2 * OUT) <= 1


def id3v2_tag(size: int) -> bytes:
    """An ID3v2.4 tag of ``size`` bytes after its header, all padding (as cover art would be)."""
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + bytes(size)


def test_an_mp3_cut_within_its_tag_s_size_is_caught_by_its_frame_count(tmp_path):
    """The byte count is compared with the whole file (tags too), so a cut shorter than a large
    ID3v2 tag passes it; the Xing frame count still shows the missing seconds."""
    whole = write_soundfile(tmp_path / "whole.mp3", sine(16000, 20.0), 16000)
    data = whole.read_bytes()
    tag = id3v2_tag(len(data))
    (tmp_path / "tagged.mp3").write_bytes(tag + data)
    (tmp_path / "cut.mp3").write_bytes(tag + data[: len(data) // 2])

    assert abs(len(decoded(tmp_path / "tagged.mp3")) - 20 * OUT) <= 1152
    with pytest.raises(InputTruncated, match=r"of 20\.\d\d s decodable"):
        decoded(tmp_path / "cut.mp3")


def with_vbri_header(data: bytes) -> bytes:
    """``data`` (an MPEG-1 stereo MP3 whose first frame carries a Xing header) with a VBRI
    header instead, stating the same bytes and frames, as Fraunhofer's encoder writes it."""
    xing = 36
    assert data[xing : xing + 4] == b"Xing" and data[xing + 7] & 3 == 3
    size, frames = data[xing + 12 : xing + 16], data[xing + 8 : xing + 12]
    vbri = b"VBRI" + bytes((0, 1, 0, 0, 0, 75)) + size + frames
    return data[:xing] + vbri + bytes(200 - len(vbri)) + data[xing + 200 :]


def test_an_mp3_with_a_vbri_header_is_refused_when_cut(tmp_path):
    lame = write_soundfile(tmp_path / "lame.mp3", np.stack([sine(48000, 4.0)] * 2, 1), 48000)
    whole = tmp_path / "vbri.mp3"
    whole.write_bytes(with_vbri_header(lame.read_bytes()))
    (tmp_path / "cut.mp3").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    assert abs(len(decoded(whole)) - 4 * OUT) <= 1152
    with pytest.raises(InputTruncated, match="VBRI header states"):
        decoded(tmp_path / "cut.mp3")


def test_a_cut_mp3_without_a_length_header_decodes_its_prefix(tmp_path):
    """Limit: an MP3 without a Xing/Info or VBRI header states no length, so a cut-off one
    yields the audio it still holds."""
    x = np.repeat(sine(48000, 4.0)[:, None], 2, axis=1)
    whole = encode(tmp_path / "whole.mp3", x, 48000, codec="mp3", muxer_options={"write_xing": "0"})
    (tmp_path / "cut.mp3").write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])

    y = decoded(tmp_path / "cut.mp3")
    assert 1.0 * OUT < len(y) < 3.9 * OUT
    assert abs(peak_frequency(y[: OUT // 2], OUT) - 440.0) < 3.0


def test_video_without_audio(tmp_path):
    refused(write_video_without_audio(tmp_path / "silent_film.mp4"), NoAudioTrack)
    refused(write_video_without_audio(tmp_path / "silent_film.mkv"), NoAudioTrack)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = sine(16000, 2.0)
    x[20000] = bad
    path = write_wav(tmp_path / "bad.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(InvalidSamples, match=r"1\.250 s") as caught:
        decoded(path)
    assert str(path) in str(caught.value)


def test_non_finite_sample_in_one_channel_after_resampling(tmp_path):
    x = np.stack([sine(44100, 1.0), sine(44100, 1.0)], axis=1)
    x[-5, 1] = np.nan
    path = write_wav(tmp_path / "bad.wav", x, 44100, subtype="DOUBLE")
    with pytest.raises(InvalidSamples):
        decoded(path)


@pytest.mark.parametrize("sr", [8, 999, 768001, 1_000_000])
def test_bad_sample_rates(tmp_path, sr):
    path = write_wav(tmp_path / "rate.wav", np.zeros(max(sr, 100), np.float32), sr)
    refused(path, BadSampleRate)


@pytest.mark.parametrize("seconds", [0.0, 0.001, 0.099])
def test_too_short(tmp_path, seconds):
    path = write_wav(tmp_path / "short.wav", np.zeros(int(16000 * seconds), np.float32), 16000)
    refused(path, InputTooShort)


def test_too_short_compressed_refused_before_any_block(tmp_path):
    path = encode(tmp_path / "short.mp4", sine(48000, 0.04), 48000, codec="aac")
    with pytest.raises(InputTooShort, match="short.mp4"):
        probe(path)
    with pytest.raises(InputTooShort, match="short.mp4"):
        next(stream(path, block_seconds=0.1))


@pytest.mark.parametrize("name", ["long.wav", "long.mp4"])
def test_memory_stays_bounded_by_the_block_size(tmp_path, name):
    """Streaming 60 s of 48 kHz stereo in 1 s blocks never holds more than a few blocks."""
    x = np.repeat(sine(48000, 60.0)[:, None], 2, axis=1)
    path = (
        write_wav(tmp_path / name, x, 48000)
        if name.endswith(".wav")
        else encode(tmp_path / name, x, 48000, codec="aac")
    )
    del x
    tracemalloc.start()
    try:
        total = sum(len(block) for block in stream(path, block_seconds=1.0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(total - 60 * OUT) <= 1024
    assert peak < 4_000_000  # the whole file as float32 stereo would be 23 MB


def test_exactly_the_minimum_is_enough(tmp_path):
    path = write_wav(tmp_path / "min.wav", sine(16000, 0.1), 16000)
    assert len(decoded(path)) == 1600


@pytest.mark.parametrize(
    "code,error",
    [
        (errno.EIO, TransientIOError),
        (errno.ESTALE, TransientIOError),
        (errno.ENOENT, InputMissing),
        (errno.EACCES, InputUnreadable),
    ],
)
def test_os_errors_map_to_pipeline_errors(tmp_path, monkeypatch, code, error):
    path = write_wav(tmp_path / "nfs.wav", sine(16000, 1.0), 16000)
    real_open = os.open

    def failing_open(p, *args, **kwargs):
        if os.fspath(p) == str(path):
            raise OSError(code, os.strerror(code), str(p))
        return real_open(p, *args, **kwargs)

    monkeypatch.setattr(decode.os, "open", failing_open)
    refused(path, error)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 0},
        {"sample_rate": 16000.0},
        {"block_seconds": 0.05},
        {"block_seconds": float("nan")},
        {"sample_rate": 10**6},
    ],
)
def test_bad_parameters(tmp_path, kwargs):
    path = write_wav(tmp_path / "a.wav", sine(16000, 1.0), 16000)
    with pytest.raises(ParamsError, match=repr(next(iter(kwargs.values()))).split(".")[0]):
        stream(path, **kwargs)


# --- odd but valid -------------------------------------------------------------------------------


def test_all_zero_audio(tmp_path):
    path = encode(tmp_path / "zeros.mp4", np.zeros((48000 * 2, 2), np.float32), 48000, codec="aac")
    y = decoded(path)
    assert abs(len(y) - 2 * OUT) <= 1024 // 3 and not np.any(np.abs(y) > 1e-6)


def test_eight_channel_flac(tmp_path):
    x = np.stack([sine(48000, 1.0, freq=200.0 * (k + 1), amplitude=0.1) for k in range(8)], axis=1)
    path = write_soundfile(tmp_path / "eight.flac", x, 48000, subtype="PCM_24")
    assert probe(path).channels == 8
    np.testing.assert_allclose(decoded(path, sample_rate=48000), x.mean(axis=1), atol=1e-6)


def test_eight_channel_mkv(tmp_path):
    x = np.repeat(sine(48000, 1.0, freq=440.0)[:, None], 8, axis=1)
    x[:, 4:] *= -1  # the mean of the channels is silence
    path = encode(tmp_path / "eight.mkv", x, 48000, codec="flac")
    assert probe(path).channels == 8
    assert np.max(np.abs(decoded(path))) < 1e-3


def test_384_khz_wav(tmp_path):
    path = write_wav(
        tmp_path / "hires.wav", sine(384000, 1.0, freq=1000.0), 384000, subtype="PCM_24"
    )
    assert probe(path).sample_rate == 384000
    y = decoded(path)
    assert len(y) == OUT and abs(peak_frequency(y, OUT) - 1000.0) < 2.0


@pytest.mark.parametrize(
    "name", ["Vorlesung Müller – 第1回.wav", "Vorlesung Müller – 第1回.mp4", "  spaces  .webm"]
)
def test_unusual_file_names(tmp_path, name):
    writer = {".wav": "wav16.wav", ".mp4": "aac.mp4", ".webm": "opus.webm"}[
        os.path.splitext(name)[1]
    ]
    path = WRITERS[writer][0](
        tmp_path / name, np.repeat(sine(48000, 1.0)[:, None], 2, axis=1), 48000
    )
    assert probe(path).path == str(path)
    assert abs(len(decoded(path)) - OUT) <= 1024


@pytest.mark.parametrize("name", ["wav16.wav", "a.flac", "aac.mp4", "opus.webm", "sf.mp3"])
def test_start_seeks_to_the_same_samples(tmp_path, name):
    """``stream(start=t)`` yields what a full decode holds from ``t`` on (players seek with it)."""
    sr = 48000
    x = np.repeat(speechlike(sr, 6.0, [(0.5, 2.0), (2.5, 5.5)], seed=9)[:, None], 2, axis=1)
    path = WRITERS[name][0](tmp_path / name, x, sr)
    whole = decoded(path)
    for start in (0.0, 1.25, 4.0):
        part = np.concatenate(list(stream(path, sample_rate=OUT, start=start)))
        first = int(round(start * OUT))
        assert abs(len(part) - (len(whole) - first)) <= OUT // 500
        piece = part[OUT // 10 : OUT]
        match, lag = max(
            (np.corrcoef(piece, whole[first + lag + OUT // 10 : first + lag + OUT])[0, 1], lag)
            for lag in range(-64, 65)
        )
        assert abs(lag) <= OUT * 2 // 1000 and match > 0.99, (lag, match)


def test_decoding_runs_ahead_of_resampling_and_stops_when_closed(tmp_path):
    """Audio at another rate is decoded in a thread of its own, a block ahead of the resampler
    (the mp4 pipeline's pace was its decode thread); closing the blocks early, or the recording
    with its blocks still open, stops that thread before the file is closed, and a file at the
    wanted rate needs no such thread."""
    x = np.repeat(speechlike(48000, 6.0, [(0.5, 5.5)], seed=4)[:, None], 2, axis=1)
    mp4 = encode(tmp_path / "a.mp4", x, 48000, codec="aac")
    blocks = stream(mp4, block_seconds=1.0)
    assert len(next(blocks)) > 0
    assert [t for t in threading.enumerate() if t.name == "ocml-prefetch"]
    blocks.close()
    assert not [t for t in threading.enumerate() if t.name == "ocml-prefetch"]
    with decode.Recording.open(mp4) as recording:
        assert len(next(recording.blocks(block_seconds=1.0))) > 0
        assert [t for t in threading.enumerate() if t.name == "ocml-prefetch"]
    assert not [t for t in threading.enumerate() if t.name == "ocml-prefetch"]
    same_rate = stream(write_soundfile(tmp_path / "b.flac", x, OUT), block_seconds=1.0)
    assert len(next(same_rate)) == OUT
    assert not [t for t in threading.enumerate() if t.name == "ocml-prefetch"]
    same_rate.close()


def test_start_is_validated(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(16000, 1.0), 16000)
    with pytest.raises(ParamsError, match="-1"):
        stream(path, start=-1)


@pytest.mark.parametrize("name", ["cut-lame-xing.mp3", "cut-vorbis.ogg"])
def test_an_open_file_is_decoded_and_refused_under_its_display_name(tmp_path, name):
    """A worker passes a descriptor it opened below its media root: errors name the media path."""
    path = write_cut(tmp_path, name, 0.5)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(InputTruncated) as caught:
            with decode.Recording(fd, "media/lecture/presenter.mp3") as recording:
                for _ in recording.blocks():
                    pass
        assert caught.value.path == "media/lecture/presenter.mp3"
        assert os.fstat(fd).st_size == path.stat().st_size  # the caller's descriptor stays open
    finally:
        os.close(fd)


def test_an_open_file_gives_the_same_audio_and_digest_as_its_path(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(16000, 1.0), 16000)
    with decode.Recording.open(path) as by_path:
        expected = np.concatenate(list(by_path.blocks()))
        digest = by_path.sha256()
    with open(path, "rb") as file, decode.Recording(file.fileno(), "shown.wav") as by_fd:
        assert by_fd.info.path == "shown.wav"
        np.testing.assert_array_equal(np.concatenate(list(by_fd.blocks())), expected)
        assert by_fd.sha256() == digest


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(InputNotAFile, match="pipe"):
        probe(fifo)
