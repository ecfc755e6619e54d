"""Hostile and careless input, round three (issue 29): video, multi-style, any-painting models and the
newer training options go through the same rules as photos (see test_hostile_inputs.py):

* no command writes to a file it reads (the painting of ``--style``, the model, the clip), by any
  name, even with ``--overwrite``; ``-o ''`` is refused everywhere;
* a clip is untrusted like a photo: tiny frames, declared sizes past the image limit, huge ``--size``,
  damaged frames and odd rotations are one line or an honest warning, never a traceback or a crash;
* SIGTERM cleans up like Ctrl-C: no temp file is left in the user's folder;
* ``--style`` weights are parsed once, finite, normalised without overflow, and an error quotes what
  was typed (clipped), not the model; a flat or NaN picture is never written with exit 0.

Every clip, image and model is generated here, tiny.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import run
from fast_style import cli
from fast_style.checkpoint import save_model
from fast_style.networks.multi_style import MultiStyleConfig, MultiStyleNet
from test_hostile_inputs import (TINY_TRAIN, assert_refused, link, noise, photos, snapshot,  # noqa: F401 (photos: a fixture)
                                 tiny_state, write_raw_model)

av = pytest.importorskip("av")
pytest.importorskip("cv2")

pytestmark = pytest.mark.usefixtures("one_thread", "cached_vgg")


def frames(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def clip(path: Path, count: int = 4, width: int = 64, height: int = 48, **options) -> Path:
    from fast_style.video.synthetic import write_clip

    return write_clip(path, frames(count, width, height), 12, **options)


def temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A photo, two paintings and a clip in a fresh folder."""
    noise(40, 32, seed=1).save(tmp_path / "photo.png")
    noise(40, 40, seed=2).save(tmp_path / "painting.png")
    noise(40, 40, seed=3).save(tmp_path / "other.png")
    clip(tmp_path / "clip.mp4")
    return tmp_path


# ----------------------------------------------------------------------------- every input is protected


@pytest.mark.parametrize("name", ["same", "symlink", "hardlink", "in-a-mix"])
def test_stylize_never_writes_over_its_painting(capsys, work, name) -> None:
    output = {"symlink": "alias.png", "hardlink": "alias.png"}.get(name, "painting.png")
    if name in ("symlink", "hardlink"):
        link(name, work / "painting.png", work / output)
    style = f"{work / 'other.png'}=0.5,{work / 'painting.png'}=0.5" if name == "in-a-mix" else work / "painting.png"
    before = snapshot(work)
    result = run(capsys, "stylize", "--model", "arbitrary", "--style", style, work / "photo.png", "-o", work / output,
                 "--overwrite")
    assert_refused(result, "stylize", "is also an input")
    assert snapshot(work) == before


def test_a_stylize_folder_run_never_writes_over_its_painting(capsys, work) -> None:
    photos = work / "photos"
    photos.mkdir()
    noise(40, 32).save(photos / "p.png")
    (work / "out").mkdir()
    noise(40, 40, seed=4).save(work / "out" / "p.png")  # the painting has the name of a result
    before = snapshot(work)
    result = run(capsys, "stylize", "--model", "arbitrary", "--style", work / "out" / "p.png", photos, "-o",
                 work / "out", "--overwrite")
    assert_refused(result, "stylize", "is also an input")
    assert snapshot(work) == before


@pytest.mark.parametrize("name", ["same", "symlink"])
def test_video_never_writes_over_its_painting(capsys, work, name) -> None:
    pictures = [noise(40, 40, seed) for seed in (5, 6)]
    pictures[0].save(work / "painting.gif", save_all=True, append_images=pictures[1:])
    output = work / "painting.gif"
    if name == "symlink":
        output = link("symlink", work / "painting.gif", work / "alias.gif")
    before = snapshot(work)
    result = run(capsys, "video", "--model", "arbitrary", "--style", work / "painting.gif", work / "clip.mp4",
                 "-o", output, "--overwrite")
    assert_refused(result, "video", "is also an input")
    assert snapshot(work) == before


@pytest.mark.parametrize("command", ["stylize", "video"])
def test_no_output_is_ever_the_model(capsys, work, command) -> None:
    """A model file may have any name; the weights and the .json beside them are inputs."""
    suffix = ".png" if command == "stylize" else ".mp4"
    model = write_raw_model(work / f"weights{suffix}")
    (work / "weights.json").write_text("{}")
    source = work / ("photo.png" if command == "stylize" else "clip.mp4")
    before = snapshot(work)
    result = run(capsys, command, "--model", model, source, "-o", model, "--overwrite")
    assert_refused(result, command, "is also an input")
    assert snapshot(work) == before


def test_compare_never_writes_a_report_over_the_model_json(capsys, work) -> None:
    model = write_raw_model(work / "run" / "report.safetensors")
    (work / "run" / "report.json").write_text("{}")  # the model's .json has a report file's name
    before = snapshot(work)
    result = run(capsys, "compare", work / "photo.png", "--model", model, "--style", work / "painting.png",
                 "--output", work / "run", "--overwrite", "--steps", "1", "--size", "32")
    assert_refused(result, "compare", "is also an input", "report.json")
    assert snapshot(work) == before


def test_compare_never_writes_over_the_painting_model_json_names(capsys, work) -> None:
    from test_hostile_inputs import write_model

    (work / "out").mkdir()
    noise(40, 40, seed=11).save(work / "out" / "grid.png")  # the trained-on painting has a report file's name
    model = write_model(work / "model" / "model.safetensors", work / "out" / "grid.png")
    before = snapshot(work)
    result = run(capsys, "compare", work / "photo.png", "--model", model, "--output", work / "out", "--overwrite",
                 "--steps", "1", "--size", "32")
    assert_refused(result, "compare", "is also an input", "grid.png")
    assert snapshot(work) == before


def test_video_refuses_an_empty_output_and_one_without_a_suffix(capsys, work) -> None:
    before = snapshot(work)
    assert_refused(run(capsys, "video", "--model", "wave", work / "clip.mp4", "-o", ""), "video", "--output is empty")
    assert_refused(run(capsys, "video", "--model", "wave", work / "clip.mp4", "-o", work / "out"), "video",
                   "has no suffix", ".mp4")
    assert snapshot(work) == before


# ----------------------------------------------------------------------------- clips are untrusted


def test_frames_too_small_for_optical_flow_are_stylized_without_it(capsys, work) -> None:
    """OpenCV's DIS raises below 12 px a side: stabilisation is turned off with a warning."""
    source = clip(work / "tiny.mp4", width=8, height=8)
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.mp4", "--report")
    assert result.status == 0, result.err
    assert "too small for optical flow" in result.err and "Traceback" not in result.err
    with av.open(str(work / "out.mp4")) as container:
        assert container.streams.video[0].frames == 4


def test_wide_frames_under_32_px_high_do_not_crash_the_process(tmp_path) -> None:
    """Frames 8-31 px high and 40+ px wide made OpenCV's DIS crash the interpreter (a segmentation
    fault, not an exception): run in a child process so that a crash fails only this test."""
    source = clip(tmp_path / "strip.mp4", width=64, height=20)
    done = subprocess.run([sys.executable, "-m", "fast_style.cli", "video", "--model", "wave", str(source), "-o",
                           str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "too small for optical flow" in done.stderr
    assert (tmp_path / "out.mp4").is_file() and not temp_files(tmp_path)


def gif_declaring(path: Path, width: int, height: int) -> Path:
    """A two-frame 8x8 GIF whose header declares a ``width`` x ``height`` canvas (a decompression bomb)."""
    pictures = [Image.new("RGB", (8, 8), (80 * index, 0, 0)) for index in range(2)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:])
    data = bytearray(path.read_bytes())
    data[6:10] = struct.pack("<HH", width, height)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("width, height", [(65535, 65535), (14000, 13000)])
def test_a_declared_canvas_past_the_image_limit_is_refused_before_decoding(capsys, work, width, height) -> None:
    source = gif_declaring(work / "bomb.gif", width, height)
    before = snapshot(work)
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.gif")
    assert_refused(result, "video", "bomb.gif", "too large to decode safely")
    assert snapshot(work) == before


def test_a_video_declaring_frames_past_the_image_limit_is_refused_before_decoding(capsys, work) -> None:
    """A YUV4MPEG2 header is plain text: a few bytes declare 20000x10000 frames (200 M pixels)."""
    source = work / "huge.y4m"
    source.write_bytes(b"YUV4MPEG2 W20000 H10000 F12:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(64))
    before = snapshot(work)
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.mp4")
    assert_refused(result, "video", "huge.y4m", "declares frames of 20000x10000", "pixel limit")
    assert snapshot(work) == before


@pytest.mark.parametrize("width, height, size, suffix, words", [
    (64, 48, 16384, ".mp4", "pixel limit"), (64, 48, 100000, ".mp4", "pixel limit"),
    (64, 8, 20000, ".webp", "at most 16383 px"), (64, 8, 20000, ".mp4", "at most 16384 px")])
def test_a_size_past_the_caps_is_refused_before_any_frame_is_stylized(capsys, work, monkeypatch, width, height,
                                                                      size, suffix, words) -> None:
    from fast_style.video import pipeline

    def never(*args, **kwargs):
        raise AssertionError("a frame was stylized before the size was checked")

    monkeypatch.setattr(pipeline, "stylize_batch", never)
    source = clip(work / "wide.mp4", width=width, height=height)
    before = snapshot(work)
    result = run(capsys, "video", "--model", "wave", source, "-o", work / f"out{suffix}", "--size", size)
    assert_refused(result, "video", words, "--size")
    assert snapshot(work) == before


def webm_with_a_damaged_packet(path: Path, index: int) -> Path:
    """A 12-frame VP9 WebM (no declared frame count) with packet ``index`` zeroed: the demuxer stops there."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for number, image in enumerate(frames(12, 64, 48)):
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = number
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        packets = [(packet.pos, packet.size) for packet in container.demux(container.streams.video[0]) if packet.size]
    data = bytearray(path.read_bytes())
    position, size = packets[index]
    data[position:position + size] = bytes(size)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("index, decoded", [(11, 11), (6, 6)])
def test_frames_lost_to_damage_are_said(capsys, work, index, decoded) -> None:
    source = webm_with_a_damaged_packet(work / "damaged.webm", index)
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.mp4")
    assert result.status == 0, result.err
    assert f"only {decoded} frames could be decoded where its duration holds about 12" in result.err
    assert "Traceback" not in result.err


def test_a_frame_missing_from_a_declared_count_is_said(capsys, work) -> None:
    """An MP4 (index first) cut just before its last frame: 11 of the 12 frames it declares decode."""
    full = clip(work / "full.mp4", count=12, faststart=True)
    with av.open(str(full)) as container:
        last = [packet.pos for packet in container.demux(container.streams.video[0]) if packet.size][-1]
    source = work / "cut.mp4"
    source.write_bytes(full.read_bytes()[:last])
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.mp4")
    assert result.status == 0, result.err
    assert "1 of its 12 frames could not be decoded" in result.err and "the output has 11" in result.err


class SilentDrop:
    """A demuxed packet whose decoder gives no picture and no error (what some codecs do with a damaged frame)."""

    def __init__(self, packet) -> None:
        self.stream, self.size = packet.stream, packet.size

    def decode(self) -> list:
        return []


class DroppingContainer:
    """A PyAV input container whose last video packet decodes to nothing."""

    def __init__(self, container, packets: int) -> None:
        self.container, self.packets = container, packets

    def demux(self, *streams):
        video = 0
        for packet in self.container.demux(*streams):
            if packet.stream.type == "video" and packet.size:
                video += 1
                if video == self.packets:  # the last: no later frame refers to it
                    yield SilentDrop(packet)
                    continue
            yield packet

    def __getattr__(self, name: str):
        return getattr(self.container, name)


def test_a_frame_the_decoder_drops_without_an_error_is_said(capsys, work, monkeypatch) -> None:
    from fast_style.video import io

    real_init = io.AvReader.__init__

    def init(self, path):
        real_init(self, path)
        self.container = DroppingContainer(self.container, 12)

    monkeypatch.setattr(io.AvReader, "__init__", init)
    source = clip(work / "twelve.mkv", count=12)  # Matroska: no declared frame count, only the packets tell
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.mp4")
    assert result.status == 0, result.err
    assert "1 of its 12 frames could not be decoded" in result.err


def test_a_45_degree_rotation_keeps_the_size_and_the_tag(capsys, work) -> None:
    source = clip(work / "tilted.mp4", rotation=45)
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.mp4")
    assert result.status == 0, result.err
    assert "rotation of 45 degrees is not a quarter turn" in result.err
    with av.open(str(work / "out.mp4")) as container:
        first = next(container.decode(container.streams.video[0]))
        assert (first.width, first.height, round(first.rotation)) == (64, 48, 45)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_fifo_or_a_folder_as_the_clip_is_named_as_such(capsys, work, kind) -> None:
    source = work / "clip2.mp4"
    os.mkfifo(source) if kind == "fifo" else source.mkdir()
    result = run(capsys, "video", "--model", "wave", source, "-o", work / "out.mp4")
    assert_refused(result, "video", "FIFO" if kind == "fifo" else "is a folder")


def test_an_ico_named_png_is_neither_a_video_nor_a_photo(capsys, work) -> None:
    Image.new("RGB", (32, 32), (10, 20, 30)).save(work / "icon.png", format="ICO")
    line = assert_refused(run(capsys, "video", "--model", "wave", work / "icon.png", "-o", work / "out.mp4"),
                          "video", "ICO format", "does not read")
    assert "fast-style stylize" not in line  # stylize would refuse it too
    assert_refused(run(capsys, "stylize", "--model", "wave", work / "icon.png", "-o", work / "out.png"),
                   "stylize", "not an image")


# ----------------------------------------------------------------------------- signals


def test_sigterm_during_video_removes_its_temp_file(tmp_path) -> None:
    """A real ``kill``: the child is terminated while its output is half written."""
    source = clip(tmp_path / "long.mp4", count=80, width=96, height=72)
    child = subprocess.Popen([sys.executable, "-m", "fast_style.cli", "video", "--model", "wave", str(source), "-o",
                              str(tmp_path / "out.mp4")], stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not temp_files(tmp_path) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert temp_files(tmp_path), "the run ended before its temp file was seen"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.strip().endswith("fast-style video: terminated") and "Traceback" not in err
    assert not temp_files(tmp_path) and not (tmp_path / "out.mp4").exists()


class NotHandled(Exception):
    """Raised by the test's own SIGTERM handler: the command did not install one."""


@pytest.mark.parametrize("command", ["video", "stylize-folder", "export", "compare"])
def test_sigterm_unwinds_like_ctrl_c(capsys, work, monkeypatch, command) -> None:
    import fast_style.compare
    import fast_style.export
    import fast_style.stylize_files
    from fast_style.video import pipeline

    def unhandled(signum, frame):
        raise NotHandled

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        model = write_raw_model(work / "model" / "model.safetensors")
        target = {"video": (pipeline, "stylize_batch"), "stylize-folder": (fast_style.stylize_files, "stylize_batch"),
                  "export": (fast_style.export, "check"), "compare": (fast_style.compare, "time_network")}[command]
        real = getattr(*target)
        calls = []

        def terminated(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2 or command in ("export", "compare"):
                os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)

        monkeypatch.setattr(*target, terminated)
        (work / "more").mkdir()
        noise(40, 32, seed=7).save(work / "more" / "a.png")
        noise(40, 32, seed=8).save(work / "more" / "b.png")
        noise(40, 32, seed=9).save(work / "more" / "c.png")
        args = {"video": ["video", "--model", "wave", work / "clip.mp4", "-o", work / "out.mp4"],
                "stylize-folder": ["stylize", "--model", "wave", work / "more", "-o", work / "out"],
                "export": ["export", "--model", model, "--format", "torchscript", "-o", work / "out.pt"],
                "compare": ["compare", work / "photo.png", "--model", "wave", "--style", work / "painting.png",
                            "--output", work / "out", "--steps", "1", "--size", "32"]}[command]
        result = run(capsys, *args)
        assert result.status == 143, result
        assert result.err.strip().endswith(f"fast-style {args[0]}: terminated")
        assert not temp_files(work)
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the command put the handler back
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- numbers in --style


def stylized(capsys, work: Path, model: str, style: str, name: str) -> np.ndarray:
    result = run(capsys, "stylize", "--model", model, "--style", style, work / "photo.png", "-o", work / name,
                 "--device", "cpu", "--precision", "fp32")
    assert result.status == 0, result.err
    return np.asarray(Image.open(work / name))


@pytest.mark.parametrize("model, huge, plain", [
    ("multi_style", "wave=3e38,udnie=3e38", "wave=1,udnie=1"),
    ("arbitrary", "{painting}=1e308,{other}=1e308", "{painting}=1,{other}=1")])
def test_huge_weights_are_an_even_mix_not_an_overflow(capsys, work, model, huge, plain) -> None:
    names = {"painting": work / "painting.png", "other": work / "other.png"}
    big = stylized(capsys, work, model, huge.format(**names), "huge.png")
    assert np.array_equal(big, stylized(capsys, work, model, plain.format(**names), "plain.png"))
    assert big.std() > 5  # a picture, not one colour


def test_huge_weights_through_the_python_api_are_an_even_mix(work) -> None:
    """Stylizer.set_style with (painting, weight) pairs skips the --style parser: the network normalises."""
    from fast_style.stylize import load_stylizer

    stylizer = load_stylizer("arbitrary", device="cpu", precision="fp32")
    photo = Image.open(work / "photo.png")
    paintings = [work / "painting.png", work / "other.png"]
    plain = np.asarray(stylizer.stylize(photo, style=[(path, 1.0) for path in paintings]))
    huge = np.asarray(stylizer.stylize(photo, style=[(path, 1e308) for path in paintings]))
    assert np.array_equal(plain, huge) and huge.std() > 5


def test_a_tiny_weight_is_still_a_whole_style(capsys, work) -> None:
    tiny = stylized(capsys, work, "multi_style", "wave=1e-46", "tiny.png")
    assert np.array_equal(tiny, stylized(capsys, work, "multi_style", "wave", "wave.png"))


@pytest.mark.parametrize("model, style, words", [
    ("multi_style", "wave=inf", "weight inf is not a finite number"),
    ("multi_style", "wave=nan,udnie=1", "weight nan is not a finite number"),
    ("multi_style", "wave=1e400", "weight 1e400 is not a finite number"),
    ("multi_style", "wave=-1,udnie=2", "weight -1.0 is negative"),
    ("multi_style", "wave=0,udnie=0", "at least one style with a weight above 0"),
    ("arbitrary", "{painting}=inf", "weight inf is not a finite number"),
    ("arbitrary", "{painting}=abc", "'abc' is not a weight")])
def test_bad_weights_say_what_was_typed_not_that_the_model_is_broken(capsys, work, model, style, words) -> None:
    style = style.format(painting=work / "painting.png")
    line = assert_refused(run(capsys, "stylize", "--model", model, "--style", style, work / "photo.png", "-o",
                              work / "out.png"), "stylize", f"--style {style}", words)
    assert "retrain" not in line and "broken" not in line
    assert not (work / "out.png").exists()


def test_a_long_style_is_clipped_in_the_message(capsys, work) -> None:
    style = "w" * 100_000
    line = assert_refused(run(capsys, "stylize", "--model", "multi_style", "--style", style, work / "photo.png",
                              "-o", work / "out.png"), "stylize", "100,000 characters")
    assert len(line) < 1000


def test_alpha_is_echoed_as_typed(capsys, work) -> None:
    assert_refused(run(capsys, "stylize", "--model", "arbitrary", "--style", work / "painting.png", "--alpha",
                       "1.0000001", work / "photo.png", "-o", work / "out.png"), "stylize", "--alpha 1.0000001:")


@pytest.mark.parametrize("command", ["stylize", "video"])
def test_a_flat_picture_is_never_written(capsys, work, command) -> None:
    """Finite weights whose last layer saturates: every pixel white, whatever the photo."""
    state = tiny_state()
    state["decoder.2.1.weight"].zero_()
    state["decoder.2.1.bias"].fill_(50.0)
    model = write_raw_model(work / "flat" / "model.safetensors", tensors=state)
    source, output = ((work / "photo.png", work / "out.png") if command == "stylize"
                      else (work / "clip.mp4", work / "out.mp4"))
    assert_refused(run(capsys, command, "--model", model, source, "-o", output), command, "one flat colour")
    assert not output.exists() and not temp_files(work)


def odd_names_model(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    network = MultiStyleNet(MultiStyleConfig(width=4, residual_blocks=1, styles=["a,b", "c=d", "plain"]))
    for norm in network.norms:  # every style its own look
        norm.weight.data.uniform_(0.2, 3.0)
        norm.bias.data.uniform_(-1.0, 1.0)
    return save_model(network, path, {})


def test_style_names_holding_a_comma_or_an_equals_sign_can_be_chosen(capsys, work) -> None:
    model = str(odd_names_model(work / "odd" / "model.safetensors"))
    first, second = stylized(capsys, work, model, "a,b", "ab.png"), stylized(capsys, work, model, "c=d", "cd.png")
    assert not np.array_equal(first, second)
    assert np.array_equal(stylized(capsys, work, model, "c=d=1", "cd1.png"), second)
    line = assert_refused(run(capsys, "stylize", "--model", model, "--style", "a,b=0.5,plain=0.5", work / "photo.png",
                              "-o", work / "mix.png"), "stylize", "no style 'a'")
    assert "chosen alone" in line


def test_painting_files_named_with_a_comma_or_an_equals_sign(capsys, work) -> None:
    for name in ("x=1.png", "a,b.png"):
        (work / name).write_bytes((work / "painting.png").read_bytes())
    plain = stylized(capsys, work, "arbitrary", str(work / "painting.png"), "plain.png")
    assert np.array_equal(stylized(capsys, work, "arbitrary", str(work / "x=1.png"), "x.png"), plain)
    assert np.array_equal(stylized(capsys, work, "arbitrary", str(work / "a,b.png"), "ab.png"), plain)
    assert np.array_equal(stylized(capsys, work, "arbitrary", f"{work / 'x=1.png'}=2", "x2.png"), plain)


@pytest.mark.parametrize("kind, words", [("fifo", "is a FIFO"), ("folder", "is a folder")])
def test_a_fifo_or_a_folder_as_the_painting_is_named_as_such(capsys, work, kind, words) -> None:
    painting = work / "painting2.png"
    os.mkfifo(painting) if kind == "fifo" else painting.mkdir()
    line = assert_refused(run(capsys, "stylize", "--model", "arbitrary", "--style", painting, work / "photo.png",
                              "-o", work / "out.png"), "stylize", words)
    assert "not found" not in line and "empty" not in line


def test_a_fifo_as_a_photo_is_named_as_such(capsys, work) -> None:
    os.mkfifo(work / "photo2.png")
    assert_refused(run(capsys, "stylize", "--model", "wave", work / "photo2.png", "-o", work / "out"), "stylize",
                   "is a FIFO")


@pytest.mark.parametrize("name, start", [("model.pt", b"\x80\x00"), ("model.pt", b"\x13\x37"),
                                         ("model.safetensors", b"\x80\x00")])
def test_random_bytes_as_a_model_are_not_called_a_pickle(capsys, work, name, start) -> None:
    model = work / name
    model.write_bytes(start + np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    line = assert_refused(run(capsys, "stylize", "--model", model, work / "photo.png", "-o", work / "out.png"),
                          "stylize", model)
    assert "pickle/torch file" not in line


def test_a_real_pickle_is_still_called_one(capsys, work) -> None:
    torch.save({"weight": torch.zeros(2)}, work / "model.pt")
    assert_refused(run(capsys, "stylize", "--model", work / "model.pt", work / "photo.png", "-o", work / "out.png"),
                   "stylize", "pickle/torch file")


def test_a_fifo_as_the_model_is_named_as_such(capsys, work) -> None:
    os.mkfifo(work / "model.safetensors")
    assert_refused(run(capsys, "stylize", "--model", work / "model.safetensors", work / "photo.png", "-o",
                       work / "out.png"), "stylize", "is a FIFO")


def test_cli_restores_the_sigterm_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with cli.sigterm_unwinds():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


# ----------------------------------------------------------------------------- training options


def multi_args(photos: Path, output: Path, paintings: list[Path], *extra: str) -> list[object]:

    return ["train", f"style_images=[{', '.join(map(str, paintings))}]", f"data.folder={photos}",
            f"output_dir={output}", "steps=2", *TINY_TRAIN, *extra]


def test_stability_with_several_paintings_is_refused_naming_the_key(capsys, work, photos) -> None:
    output = work / "run"
    result = run(capsys, *multi_args(photos, output, [work / "painting.png", work / "other.png"],
                                     "stability.weight=30"))
    assert_refused(result, "train", "stability.weight=30", "style_images")
    assert not output.exists()


@pytest.mark.parametrize("entry, words", [
    ("{{image: {painting}, style_weight: .nan}}", "style_images[1].style_weight' must be a finite number"),
    ("{{image: {painting}, style_weight: abc}}", "style_images[1].style_weight' must be a number"),
    ("{{image: {painting}, size: big}}", "style_images[1].size' must be an integer"),
    ("{{image: {painting}, colour: red}}", "unknown key 'style_images[1].colour'")])
def test_a_bad_style_images_entry_names_the_entry_and_the_key(capsys, work, photos, entry, words) -> None:

    output = work / "run"
    listed = f"[{work / 'other.png'}, {entry.format(painting=work / 'painting.png')}]"
    result = run(capsys, "train", f"style_images={listed}", f"data.folder={photos}", f"output_dir={output}",
                 "steps=1", *TINY_TRAIN)
    assert_refused(result, "train", words)
    assert not output.exists()


def test_resuming_several_paintings_compares_files_not_names(capsys, work, photos) -> None:
    """The same files through a symlinked folder resume; the same paintings in another order do not
    (each painting owns the row of its place in style_images)."""
    paintings = [work / "painting.png", work / "other.png"]
    output = work / "run"
    assert run(capsys, *multi_args(photos, output, paintings, "checkpoint_every=1")).status == 0
    (output / "model.safetensors").unlink()
    before = snapshot(output)
    reordered = run(capsys, *multi_args(photos, output, paintings[::-1], "steps=3"))
    assert_refused(reordered, "train", "from another run", "reordered", "painting 0 is now")
    assert snapshot(output) == before
    (work / "alias").symlink_to(work, target_is_directory=True)
    aliased = [work / "alias" / path.name for path in paintings]
    resumed = run(capsys, *multi_args(photos, output, aliased, "steps=3"))
    assert resumed.status == 0, resumed.err
    assert "after 3 steps" in resumed.out


def limited_train(work: Path, photos: Path, output: Path, limit: int) -> subprocess.CompletedProcess:
    """``fast-style train`` in a child process whose files may grow to ``limit`` bytes (RLIMIT_FSIZE):
    past it a write fails with EFBIG ("File too large"), as on a full disk."""
    import resource


    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    arguments = ["train", f"style_image={work / 'painting.png'}", f"data.folder={photos}", f"output_dir={output}",
                 "steps=2", *TINY_TRAIN, "checkpoint_every=1"]
    return subprocess.run([sys.executable, "-m", "fast_style.cli", *arguments], capture_output=True, text=True,
                          timeout=300, preexec_fn=limit_files, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_file_size_limit_while_checkpointing_is_a_warning_and_training_goes_on(work, photos) -> None:
    """The tiny network's model file is about 41 KB, a checkpoint's optimiser state about 90 KB."""
    output = work / "run"
    done = limited_train(work, photos, output, 60_000)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr  # the training log's warnings go to stdout
    assert "warning: could not write the step 1 checkpoint" in said and "File too large" in said
    assert "Traceback" not in done.stderr + done.stdout
    assert (output / "model.safetensors").is_file() and not temp_files(output)


def test_a_file_size_limit_for_the_model_itself_is_one_line(work, photos) -> None:
    output = work / "run"
    done = limited_train(work, photos, output, 20_000)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("fast-style train: error:")
    assert "File too large" in done.stderr and not temp_files(output)
