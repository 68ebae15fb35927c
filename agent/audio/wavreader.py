"""A RIFF/WAVE reader for what recorders really write, delivering int16 blocks.

Python's ``wave`` reads only integer PCM with a plain ``fmt `` chunk, so a 4-channel file from sox
(WAVE_FORMAT_EXTENSIBLE, which sox writes for more than two channels or more than 16 bits) fails
with ``unknown format: 65534`` and a float or 24-bit recording is refused. This reader takes
8/16/24/32-bit integer PCM and 32/64-bit float, plain or extensible, and converts every block to
int16 (float is clipped at full scale). A damaged file is a ``WavFormatError`` that says what is
wrong and where, never an empty message.
"""

from __future__ import annotations

import struct

import numpy as np

FORMAT_PCM = 0x0001
FORMAT_FLOAT = 0x0003
FORMAT_EXTENSIBLE = 0xFFFE
# The GUID tail shared by the KSDATAFORMAT_SUBTYPE_* GUIDs; the first two bytes carry the format tag.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_PCM_BITS = (8, 16, 24, 32)
_FLOAT_BITS = (32, 64)


class WavFormatError(ValueError):
    """The file is not a WAV this reader can take; the message names the file and the problem."""


class WavReader:
    """``read(n)`` -> int16 array (≤ n, channels); ``rewind()``; ``close()``."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._file = open(path, "rb")
        except IsADirectoryError:
            raise WavFormatError(f"{path}: is a directory, not a WAV file") from None
        except OSError as exc:
            raise WavFormatError(f"{path}: cannot open: {exc.strerror}") from None
        try:
            self._parse_header()
        except BaseException:
            self._file.close()
            raise
        self._remaining_frames = self.n_frames

    def _fail(self, problem: str) -> None:
        raise WavFormatError(f"{self.path}: {problem}")

    def _parse_header(self) -> None:
        head = self._file.read(12)
        self._data_start: int | None = None  # None: not seekable (a pipe), so it cannot loop
        if len(head) < 12:
            self._fail(f"truncated header: the file has {len(head)} byte(s), a WAV header needs at least 44")
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            self._fail(f"not a RIFF/WAVE file (starts with {head[:4]!r})")
        fmt = None
        while True:
            chunk_head = self._file.read(8)
            if len(chunk_head) < 8:
                where = "before the 'fmt ' chunk" if fmt is None else "before the 'data' chunk"
                self._fail(f"truncated header: the file ends at byte {self._file.tell()}, {where}")
            chunk_id, size = chunk_head[:4], struct.unpack("<I", chunk_head[4:])[0]
            if chunk_id == b"fmt ":
                body = self._file.read(size)
                if len(body) < min(size, 16) or size < 16:
                    self._fail(f"truncated header: the 'fmt ' chunk has {len(body)} of 16 bytes")
                self._parse_fmt(body)
                fmt = True
                if size % 2:
                    self._file.read(1)
            elif chunk_id == b"data":
                if fmt is None:
                    self._fail("the 'data' chunk comes before the 'fmt ' chunk")
                available = size
                if self._file.seekable():  # a pipe (a live recorder) has no end to look at, nor a place
                    self._data_start = self._file.tell()
                    available = self._file.seek(0, 2) - self._data_start
                    self._file.seek(self._data_start)
                self.n_frames = min(size, available) // self.block_align
                return
            else:
                self._file.read(size + (size % 2))

    def _parse_fmt(self, body: bytes) -> None:
        tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == FORMAT_EXTENSIBLE:
            if len(body) < 40:
                self._fail(f"truncated header: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk has {len(body)} of 40 bytes")
            subformat = body[24:40]
            if subformat[2:] != _GUID_TAIL:
                self._fail(f"WAVE_FORMAT_EXTENSIBLE with an unknown sub-format {subformat.hex()}")
            tag = struct.unpack("<H", subformat[:2])[0]
        if tag not in (FORMAT_PCM, FORMAT_FLOAT):
            self._fail(f"unsupported encoding (format tag {tag:#06x}); allowed: integer PCM or IEEE float")
        allowed_bits = _PCM_BITS if tag == FORMAT_PCM else _FLOAT_BITS
        if bits not in allowed_bits:
            kind = "integer PCM" if tag == FORMAT_PCM else "float"
            self._fail(f"{bits}-bit {kind} is not supported; allowed: {', '.join(map(str, allowed_bits))}-bit")
        if channels < 1 or rate < 1 or block_align != channels * bits // 8:
            self._fail(f"inconsistent 'fmt ' chunk: {channels} channel(s), {rate} Hz, "
                       f"block align {block_align} for {bits}-bit samples")
        self.is_float = tag == FORMAT_FLOAT
        self.channels = channels
        self.rate_hz = rate
        self.bits = bits
        self.block_align = block_align

    def read(self, n_frames: int) -> np.ndarray:
        """Up to ``n_frames`` frames as int16 (frames, channels); an empty array at the end."""
        n = min(n_frames, self._remaining_frames)
        raw = self._file.read(n * self.block_align)
        n = len(raw) // self.block_align
        self._remaining_frames -= n
        return to_int16(raw[: n * self.block_align], self.bits, self.is_float).reshape(n, self.channels)

    def rewind(self) -> None:
        if self._data_start is None:
            raise WavFormatError(f"{self.path}: a pipe cannot be looped")
        self._file.seek(self._data_start)
        self._remaining_frames = self.n_frames

    def close(self) -> None:
        self._file.close()


def to_int16(raw: bytes, bits: int, is_float: bool) -> np.ndarray:
    """Little-endian samples of any supported encoding -> int16 (the top 16 bits; float clipped)."""
    if is_float:
        x = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8")
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    if bits == 16:
        return np.frombuffer(raw, dtype="<i2").copy()
    if bits == 8:  # unsigned, centred on 128
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if bits == 32:
        return (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)  # 24-bit: keep the two high bytes
    return (b[:, 1].astype(np.uint16) | (b[:, 2].astype(np.uint16) << 8)).view(np.int16)
