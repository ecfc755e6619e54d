"""Reading and writing clips, one frame at a time, keeping what the stylization must not change.

Real videos go through PyAV (its wheels carry FFmpeg): frames are decoded in presentation order with
their timestamps, which are written back unchanged (so frame count, frame rate, variable timing and
audio sync all survive), and the audio packets are copied into the output without re-encoding where
the output container accepts the codec (re-encoded otherwise). Frames are handed out upright (the
display rotation applied, so the style's strokes are painted the right way up) and turned back
before encoding, with the same rotation recorded, so the output shows like the input.

Animated GIF/WebP go through Pillow (FFmpeg cannot decode animated WebP), with each frame's duration
kept. Pillow writes an animation in one call, so a GIF/WebP *output* holds its frames in memory:
fine for the short clips these formats are used for; video outputs stream.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from fast_style import safety
from fast_style.errors import FastStyleError
from fast_style.images import DEFAULT_MAX_PIXELS, MAX_SIDE_BY_SUFFIX, OPEN_FORMATS
from fast_style.video import require

# Output suffix -> (FFmpeg muxer, video encoder, audio encoder when the input's codec cannot be copied)
VIDEO_FORMATS: dict[str, tuple[str, str, str]] = {
    ".mp4": ("mp4", "libx264", "aac"), ".m4v": ("mp4", "libx264", "aac"), ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"), ".webm": ("webm", "libvpx-vp9", "libopus"),
}
ANIMATION_FORMATS: dict[str, str] = {".gif": "GIF", ".webp": "WEBP"}
OUTPUT_SUFFIXES = (*VIDEO_FORMATS, *ANIMATION_FORMATS)
# Encoder settings: stylized texture is all high frequencies, which default rates smear (and the
# smearing changes from frame to frame: flicker of its own), so quality is set high.
ENCODER_OPTIONS: dict[str, dict[str, str]] = {"libx264": {"crf": "18", "preset": "medium"},
                                              "libvpx-vp9": {"crf": "24", "b": "0", "row-mt": "1"}}
DEFAULT_RATE = Fraction(25)  # for containers that declare none
# A file may decode a frame or two fewer than its header declares or its packets promise (edit lists,
# a damaged frame the decoder drops): that is said in a warning; more missing than this means the file
# was cut short or is damaged, and is refused.
MISSING_FRAMES_ALLOWED = 2
# The largest side each video encoder opens with (x264 refuses more than 16384; VP9 takes 65536);
# animations have their image format's limit (fast_style.images.MAX_SIDE_BY_SUFFIX).
ENCODER_MAX_SIDE: dict[str, int] = {"libx264": 16384, "libvpx-vp9": 65536}


class VideoError(FastStyleError):
    """A clip that cannot be read or written: one line naming the file and what to do."""


@dataclass
class Frame:
    """One decoded frame: upright RGB pixels and when it is shown."""

    image: np.ndarray  # (H, W, 3) uint8
    pts: int  # in ``time_base`` units
    time_base: Fraction
    duration_ms: int | None = None  # animations: how long this frame stays up


@dataclass
class VideoInfo:
    """What the output must keep: upright size, rate, declared frame count, rotation and audio."""

    width: int
    height: int
    rate: Fraction
    frames: int | None  # declared count, None where the container does not say
    time_base: Fraction  # of the frames' timestamps
    rotation: int = 0  # display rotation in degrees (counter-clockwise, as FFmpeg records it)
    audio: Any = None  # the input's audio stream (PyAV), to copy or re-encode
    loop: int = 0  # animations: how often to play (0: forever)


def quarter_turns(rotation: int) -> int:
    """How many quarter turns the pixels are turned: a rotation that is not a multiple of 90 degrees (a
    45-degree tag) is not applied to the pixels at all; the tag is kept for the player (see AvReader)."""
    return 0 if rotation % 90 else rotation // 90 % 4


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored pixels the way a player shows them (FFmpeg's rotation is counter-clockwise)."""
    return np.ascontiguousarray(np.rot90(image, -quarter_turns(rotation)))


def stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """Undo :func:`upright`: the pixels to encode, so the recorded rotation shows them upright."""
    return np.ascontiguousarray(np.rot90(image, quarter_turns(rotation)))


def check_frame_size(path: Path, width: int, height: int, what: str = "declares frames of") -> None:
    """Refuse frames over the image pixel limit before one is decoded: a tiny file may declare a
    65535x65535 canvas, as a decompression bomb image does."""
    if width * height > DEFAULT_MAX_PIXELS:
        raise VideoError(f"{path}: {what} {width}x{height} = {width * height:,} pixels, over the "
                         f"{DEFAULT_MAX_PIXELS:,}-pixel limit (possible decompression bomb); downscale it first")


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split()).rstrip(".") or type(error).__name__


# ----------------------------------------------------------------------------- reading


class AvReader:
    """A real video through PyAV: frames and audio packets in file order (see :meth:`items`)."""

    def __init__(self, path: Path) -> None:
        self.path, self._av = path, require("av")
        self.container = self._open()
        rotation = self._rotation()
        # Reopened rather than rewound: seeking back is not possible in every format.
        self.container = self._open()
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"  # decode on several threads: free speed for big frames
        audio = self.container.streams.audio[0] if self.container.streams.audio else None
        context = self.video.codec_context
        width, height = (context.height, context.width) if quarter_turns(rotation) % 2 else (context.width,
                                                                                             context.height)
        self.info = VideoInfo(width, height, self.video.average_rate or self.video.guessed_rate or DEFAULT_RATE,
                              self.video.frames or None, self.video.time_base or Fraction(1, 1000), rotation, audio)
        # Containers that declare no frame count (WebM, MKV) still know their duration; without audio it is
        # the video's, so it tells about how many frames there are (a damaged file may silently stop early).
        duration = self.container.duration  # microseconds, or None
        # (A quarter frame less, so that a duration rounded up in the container never asks for a frame more.)
        self.estimated = (round(Fraction(duration, 1_000_000) * self.info.rate - Fraction(1, 4))
                          if duration and audio is None and self.info.frames is None else None)

    def _open(self) -> Any:
        """The container, refused in one line when it is not a video or has no video stream."""
        try:
            container = self._av.open(str(self.path))
        except (self._av.error.FFmpegError, UnicodeDecodeError) as error:
            raise VideoError(f"{self.path}: not a readable video ({_reason(error)}): not a video, or truncated or "
                             "corrupt; pass a video file (mp4, mov, mkv, webm, ...) or an animated GIF/WebP") from None
        if not container.streams.video:
            kinds = sorted({stream.type for stream in container.streams}) or ["nothing"]
            container.close()
            raise VideoError(f"{self.path}: has no video stream (it holds {', '.join(kinds)}); pass a video file")
        context = container.streams.video[0].codec_context
        try:
            check_frame_size(self.path, context.width, context.height)
        except VideoError:
            container.close()
            raise
        return container

    def _rotation(self) -> int:
        """The display rotation, read from the first frame (PyAV exposes it on frames, not streams)."""
        try:
            first = next(self.container.decode(self.container.streams.video[0]))
        except StopIteration:
            raise VideoError(f"{self.path}: the video stream holds no frames; the file is empty or truncated") from None
        except self._av.error.FFmpegError as error:
            raise VideoError(f"{self.path}: cannot decode its frames ({_reason(error)}); the file is "
                             "truncated or corrupt") from None
        finally:
            self.container.close()
        rotation = int(round(first.rotation)) % 360
        if rotation % 90:
            warnings.warn(f"{self.path}: its display rotation of {rotation} degrees is not a quarter turn; the "
                          "frames are stylized as stored and the output keeps the same rotation tag", stacklevel=2)
        return rotation

    def items(self) -> Iterator[Frame | Any]:
        """Upright :class:`Frame` objects and the audio stream's packets, as they come in the file."""
        streams = [self.video] + ([self.info.audio] if self.info.audio is not None else [])
        time_base = self.info.time_base
        count = packets = 0
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.size:  # skip the empty packets that only flush decoders
                        yield packet
                    continue
                packets += bool(packet.size)
                for picture in packet.decode():
                    check_frame_size(self.path, picture.width, picture.height, f"frame {count + 1} is")
                    # Frames without timestamps (rare raw streams) are placed on the nominal rate.
                    pts = picture.pts if picture.pts is not None else round(count / self.info.rate / time_base)
                    image = upright(picture.to_ndarray(format="rgb24"), self.info.rotation)
                    count += 1
                    yield Frame(image, pts, time_base)
        except self._av.error.FFmpegError as error:
            raise VideoError(f"{self.path}: cannot decode frame {count + 1} ({_reason(error)}); the file is "
                             "truncated or corrupt") from None
        expected = max(self.info.frames or 0, packets)  # a damaged frame's packet yields no picture
        if count == 0 or count < expected - MISSING_FRAMES_ALLOWED:
            raise VideoError(f"{self.path}: only {count} of its {expected or 'some'} frames could be decoded; the "
                             "file is truncated or corrupt")
        if count < expected:
            warnings.warn(f"{self.path}: {expected - count} of its {expected} frames could not be decoded (damaged or "
                          f"missing) and are left out: the output has {count}", stacklevel=2)
        elif self.estimated and count < self.estimated:
            warnings.warn(f"{self.path}: only {count} frames could be decoded where its duration holds about "
                          f"{self.estimated}; the file may be cut short or damaged, and the output is as short",
                          stacklevel=2)

    def close(self) -> None:
        self.container.close()


def frame_duration(frame: Image.Image) -> int:
    """How long an animation frame stays up, in ms (100 where the file does not say, as browsers do).
    Pillow's WebP reader sets it only once the frame is loaded."""
    frame.load()
    return int(frame.info.get("duration") or 100)


class AnimationReader:
    """An animated GIF/WebP/PNG through Pillow, each frame with its duration."""

    def __init__(self, path: Path, image: Image.Image) -> None:
        self.path, self.image = path, image
        durations = [frame_duration(frame) for frame in ImageSequence.Iterator(image)]
        image.seek(0)
        rate = Fraction(1000 * len(durations), sum(durations)).limit_denominator(1001)
        self.info = VideoInfo(image.width, image.height, rate, len(durations), Fraction(1, 1000),
                              loop=image.info.get("loop", 0))

    def items(self) -> Iterator[Frame]:
        pts = 0
        try:
            for frame in ImageSequence.Iterator(self.image):
                duration = frame_duration(frame)
                yield Frame(np.array(frame.convert("RGB")), pts, Fraction(1, 1000), duration)
                pts += duration
        except (OSError, EOFError, ValueError) as error:
            raise VideoError(f"{self.path}: cannot decode an animation frame ({_reason(error)}); the file is "
                             "truncated or corrupt") from None

    def close(self) -> None:
        self.image.close()


def open_video(path: str | Path) -> AvReader | AnimationReader:
    """The reader for a clip: Pillow for animated images, PyAV for everything else; still images and
    files that are not videos are refused in one line."""
    path = Path(path)
    kind = safety.kind_of(path)  # a FIFO would block FFmpeg's read: only regular files are opened
    if kind is not None:
        raise VideoError(f"{path}: is {kind}, not a video file; pass a video file")
    if not path.is_file():
        raise VideoError(f"{path}: file not found; pass a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes); pass a video file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise VideoError(f"{path}: too large to decode safely ({_reason(error)}); downscale it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        image = None  # not an image Pillow knows: a job for FFmpeg
    if image is not None:
        try:
            check_frame_size(path, *image.size, what="declares a canvas of")
        except VideoError:
            image.close()
            raise
        if getattr(image, "is_animated", False) and image.format in ("GIF", "WEBP", "PNG"):
            try:
                return AnimationReader(path, image)
            except (OSError, EOFError, ValueError) as error:
                image.close()
                raise VideoError(f"{path}: cannot read the animation ({_reason(error)}); the file is truncated "
                                 "or corrupt") from None
        image.close()
        if image.format in OPEN_FORMATS:
            raise VideoError(f"{path}: a still {image.format} image, not a video; use `fast-style stylize` for photos")
        if image.format != "MPEG":  # Pillow "identifies" MPEG-1 video it cannot decode
            raise VideoError(f"{path}: a file in {image.format} format, which fast_style does not read; pass a video file "
                             "(mp4, mov, mkv, webm, ...) or an animated GIF/WebP")
    return AvReader(path)


# ----------------------------------------------------------------------------- writing


def output_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """Upright (width, height) of the output: the input's, or longer side ``size`` keeping the aspect."""
    if size is None:
        return info.width, info.height
    scale = size / max(info.width, info.height)
    return max(1, round(info.width * scale)), max(1, round(info.height * scale))


def check_output_size(target: Path, size: tuple[int, int]) -> None:
    """Refuse, before anything is stylized or encoded, frames the output cannot hold: over the image
    pixel limit (a huge ``--size``), or longer than the encoder or animation format accepts."""
    width, height = size
    suffix = target.suffix.lower()
    if width * height > DEFAULT_MAX_PIXELS:
        raise VideoError(f"{target}: frames of {width}x{height} = {width * height:,} pixels are over the "
                         f"{DEFAULT_MAX_PIXELS:,}-pixel limit; use a smaller --size")
    limit = (MAX_SIDE_BY_SUFFIX.get(suffix) if suffix in ANIMATION_FORMATS
             else ENCODER_MAX_SIDE.get(VIDEO_FORMATS.get(suffix, ("", ""))[1]))
    if limit is not None and max(width, height) > limit:
        raise VideoError(f"{target}: frames of {width}x{height} do not fit in {suffix} (at most {limit} px a "
                         "side); use a smaller --size")


class AvWriter:
    """Encodes frames into a video container with the input's timestamps, rotation and audio."""

    def __init__(self, temp: Path, suffix: str, info: VideoInfo, size: tuple[int, int]) -> None:
        av = require("av")
        muxer, encoder, audio_encoder = VIDEO_FORMATS[suffix]
        self.container = av.open(str(temp), "w", format=muxer)
        self.rotation = info.rotation
        self.video = self.container.add_stream(encoder, rate=info.rate)
        width, height = (size[1], size[0]) if quarter_turns(self.rotation) % 2 else size
        self.video.width, self.video.height = width, height
        # 4:2:0 needs even sides; odd-sized clips keep their size in 4:4:4 instead.
        self.video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self.video.options = dict(ENCODER_OPTIONS.get(encoder, {}))
        self.video.codec_context.time_base = info.time_base  # keep every timestamp exactly
        if self.rotation:
            self.video.set_display_rotation(self.rotation)
        self.audio, self.audio_mode = None, "none"
        if info.audio is not None:
            if info.audio.codec_context.name in self.container.supported_codecs:
                self.audio, self.audio_mode = self.container.add_stream_from_template(info.audio), "copied"
            else:
                self.audio = self.container.add_stream(audio_encoder, rate=info.audio.rate)
                self.audio_mode = f"re-encoded ({info.audio.codec_context.name} -> {audio_encoder})"

    def write(self, frame: Frame) -> None:
        av = require("av")
        picture = av.VideoFrame.from_ndarray(stored(frame.image, self.rotation), format="rgb24")
        picture.pts, picture.time_base = frame.pts, frame.time_base
        self.container.mux(self.video.encode(picture))

    def write_audio(self, packet: Any) -> None:
        """Copy an audio packet as it is, or decode and re-encode it where the container needs that."""
        if self.audio_mode == "copied":
            packet.stream = self.audio
            self.container.mux(packet)
        elif self.audio is not None:
            for samples in packet.decode():
                samples.pts = None  # the encoder re-times samples in its own frame size
                self.container.mux(self.audio.encode(samples))

    def finish(self) -> None:
        """Flush the encoders and write the trailer (the file is complete only after this)."""
        self.container.mux(self.video.encode())
        if self.audio is not None and self.audio_mode != "copied":
            self.container.mux(self.audio.encode())
        self.container.close()

    def close(self) -> None:
        """Release the file after a failure (the temp file is then deleted by the caller)."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - a half-written container may refuse its trailer; it is discarded
            pass


class AnimationWriter:
    """Collects frames and writes an animated GIF/WebP with Pillow at the end (see the module note)."""

    def __init__(self, temp: Path, suffix: str, info: VideoInfo) -> None:
        self.temp, self.format, self.loop = temp, ANIMATION_FORMATS[suffix], info.loop
        self.default_ms = max(1, round(1000 / info.rate))
        self.audio_mode = "dropped" if info.audio is not None else "none"
        self.frames: list[Image.Image] = []
        self.durations: list[int] = []

    def write(self, frame: Frame) -> None:
        self.frames.append(Image.fromarray(frame.image))
        self.durations.append(frame.duration_ms or self.default_ms)

    def write_audio(self, packet: Any) -> None:
        """GIF and WebP hold no sound: audio is dropped (the command says so)."""

    def finish(self) -> None:
        options = {"lossless": False, "quality": 90} if self.format == "WEBP" else {"optimize": False}
        self.frames[0].save(self.temp, format=self.format, save_all=True, append_images=self.frames[1:],
                            duration=self.durations, loop=self.loop, **options)

    def close(self) -> None:
        self.frames.clear()


def open_writer(temp: Path, suffix: str, info: VideoInfo, size: tuple[int, int]) -> AvWriter | AnimationWriter:
    """The writer for an output suffix (checked beforehand by :func:`check_output`)."""
    if suffix in ANIMATION_FORMATS:
        return AnimationWriter(temp, suffix, info)
    return AvWriter(temp, suffix, info, size)


def check_output(source: Path, target: Path, *, overwrite: bool, reads: Iterable[Path] = ()) -> None:
    """Refuse an unknown format, the input itself or another file the run ``reads`` (the painting, the
    model; links too), anything but a regular file, and an existing file without ``overwrite``: the
    project's one output rule (:func:`fast_style.safety.check_output`)."""
    safety.check_output(target, inputs=[source, *reads], overwrite=overwrite, suffixes=OUTPUT_SUFFIXES,
                        holding="videos")
