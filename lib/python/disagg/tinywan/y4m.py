"""y4m: RGB frames to a YUV4MPEG2 file, 4:2:0, full range (C420jpeg),
in the same form as the C decoder's (lib/y4m.c): the same header, written
under .NAME.PID.tmp beside the final name and renamed into place when
complete (so the daemon's clean-up of dead decoders' files applies).

The conversion is integer-exact (JFIF/BT.601 full-range coefficients in
8.8 fixed point), so the same 8-bit RGB always gives the same bytes.
"""

import os
import stat

import numpy as np

FRAME = b"FRAME\n"


def header(width, height):
    # F16:1: Wan's frame rate; A1:1 square pixels; Ip progressive.
    return ("YUV4MPEG2 W%d H%d F16:1 Ip A1:1 C420jpeg\n"
            % (width, height)).encode("ascii")


def size(width, height, frames):
    return len(header(width, height)) + frames * (
        len(FRAME) + width * height * 3 // 2)


def to_u8(rgb):
    """float RGB in [-1, 1] (a torch tensor) -> uint8 numpy, as Wan saves
    video: (x + 1) / 2 * 255, rounded half up."""
    import torch
    x = ((rgb.float().clamp(-1, 1) + 1.0) * 127.5 + 0.5).floor_()
    return x.to(torch.uint8).cpu().numpy()


def rgb_to_yuv420(rgb):
    """uint8 RGB [3, H, W] (H, W even) -> bytes of the Y, U, V planes.
    Chroma is computed per pixel, then each 2x2 block averaged (centred
    siting, as C420jpeg means)."""
    r, g, b = (rgb[i].astype(np.int32) for i in range(3))
    y = (77 * r + 150 * g + 29 * b + 128) >> 8
    u = ((-43 * r - 85 * g + 128 * b + 128) >> 8) + 128
    v = ((128 * r - 107 * g - 21 * b + 128) >> 8) + 128

    def sub(c):
        c = np.clip(c, 0, 255)
        s = c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]
        return ((s + 2) >> 2).astype(np.uint8)

    return b"".join([np.clip(y, 0, 255).astype(np.uint8).tobytes(),
                     sub(u).tobytes(), sub(v).tobytes()])


class Writer:
    """with Writer(path, w, h, frames) as out: out.write(rgb_u8) ... --
    renamed into place when the block ends normally with every frame
    written, removed otherwise."""

    def __init__(self, path, width, height, frames):
        if width <= 0 or height <= 0 or width % 2 or height % 2 or \
                frames < 1:
            raise ValueError("%s: bad video size %dx%d x %d frames"
                             % (path, width, height, frames))
        self.path = path
        self.width, self.height, self.frames = width, height, frames
        folder, name = os.path.split(path)
        self.tmp = os.path.join(folder, ".%s.%d.tmp" % (name, os.getpid()))
        self.written = 0
        self.bytes = 0
        self.f = None

    def __enter__(self):
        # Made here and nowhere else: a link planted at the name in a
        # shared folder is never written through (O_EXCL, O_NOFOLLOW);
        # a regular file of ours is a dead process's with our pid.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(self.tmp, flags, 0o644)
        except FileExistsError:
            st = os.lstat(self.tmp)
            if not (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()):
                raise OSError("%s: exists and is not a file of ours (a "
                              "link, or another user's): not written "
                              "through" % self.tmp) from None
            os.unlink(self.tmp)
            fd = os.open(self.tmp, flags, 0o644)
        self.f = os.fdopen(fd, "wb")
        self._put(header(self.width, self.height))
        return self

    def _put(self, data):
        self.f.write(data)
        self.bytes += len(data)

    def write(self, rgb):
        """One frame: uint8 RGB [3, H, W]."""
        if self.written >= self.frames:
            raise ValueError("%s: more than %d frames" % (self.path,
                                                          self.frames))
        if rgb.shape != (3, self.height, self.width):
            raise ValueError("%s: frame of shape %s, expected %s"
                             % (self.path, rgb.shape,
                                (3, self.height, self.width)))
        self._put(FRAME + rgb_to_yuv420(rgb))
        self.written += 1

    def __exit__(self, etype, exc, tb):
        try:
            if etype is None and self.written != self.frames:
                raise ValueError("%s: %d frames written, %d expected"
                                 % (self.path, self.written, self.frames))
            self.f.close()
            self.f = None
            if etype is None:
                os.replace(self.tmp, self.path)
        finally:
            if self.f is not None:
                self.f.close()
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


def read(path):
    """(header fields dict, list of frames as bytes) -- for tests and
    tools."""
    with open(path, "rb") as f:
        return read_bytes(f.read(), path)


def read_bytes(data, path="video"):
    """read() of a file's contents."""
    nl = data.index(b"\n")
    fields = data[:nl].decode("ascii").split()
    if fields[0] != "YUV4MPEG2":
        raise ValueError("%s: not a YUV4MPEG2 file" % path)
    head = {"magic": fields[0]}
    for tok in fields[1:]:
        head[tok[0]] = tok[1:]
    w, h = int(head["W"]), int(head["H"])
    n = w * h * 3 // 2
    frames, pos = [], nl + 1
    while pos < len(data):
        if data[pos:pos + len(FRAME)] != FRAME:
            raise ValueError("%s: no FRAME at byte %d" % (path, pos))
        pos += len(FRAME)
        frames.append(data[pos:pos + n])
        if len(frames[-1]) != n:
            raise ValueError("%s: last frame cut short" % path)
        pos += n
    return head, frames
