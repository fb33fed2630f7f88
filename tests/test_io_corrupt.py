"""fastrnn.load on damaged .npz files: every one is a ValueError naming the file.

Each case damages one field of a file that fastrnn.save wrote, at the byte offsets the zip
and .npy formats define (PKWARE APPNOTE: central directory entries start with PK\\x01\\x02,
local headers with PK\\x03\\x04; .npy: magic, version, header length, a dict literal).  The
readers underneath raise their own errors for these (zipfile's NotImplementedError for a
version or compression method it lacks, RuntimeError for the encryption flag, BadZipFile
for a CRC mismatch); fastrnn.load must turn each into a ValueError, and must refuse a .npy
header that declares more data than the file holds before allocating it.
"""

import struct

import numpy as np
import pytest

import fastrnn

CENTRAL, LOCAL = b"PK\x01\x02", b"PK\x03\x04"


def entries(raw, signature):
    """Offsets of every record with this signature."""
    out, at = [], raw.find(signature)
    while at >= 0:
        out.append(at)
        at = raw.find(signature, at + 1)
    return out


def set_u16(raw, offset, value):
    raw[offset:offset + 2] = struct.pack("<H", value)


def extract_version(raw):          # central directory: version needed to extract, at +6
    for at in entries(raw, CENTRAL):
        set_u16(raw, at + 6, 0x0A00 | 109)       # "10.9", beyond zipfile's 6.3


def compression_method(raw):       # +10 in the central directory, +8 in a local header
    for at in entries(raw, CENTRAL):
        set_u16(raw, at + 10, 99)
    for at in entries(raw, LOCAL):
        set_u16(raw, at + 8, 99)


def encrypted_flag(raw):           # general purpose flag bit 0, +8 central, +6 local
    for at in entries(raw, CENTRAL):
        set_u16(raw, at + 8, 1)
    for at in entries(raw, LOCAL):
        set_u16(raw, at + 6, 1)


def lzma_method(raw):              # method 14 (LZMA) on data that is not LZMA
    for at in entries(raw, CENTRAL):
        set_u16(raw, at + 10, 14)
    for at in entries(raw, LOCAL):
        set_u16(raw, at + 8, 14)


def data_byte(raw):                # one byte of the last array's data: its CRC-32 fails
    last = entries(raw, CENTRAL)[0]
    raw[last - 3] ^= 0x40


def npy_shape(raw):                # a .npy header that claims a huge array of the right name
    at = raw.find(b"'shape': (20, 5)")
    assert at > 0
    raw[at:at + 16] = b"'shape': (9**9,)"


def npy_truncated_data(raw):       # the member ends before its data: cut inside the last one
    last = entries(raw, CENTRAL)[0]
    del raw[last - 40:last]


@pytest.mark.parametrize("damage", [extract_version, compression_method, encrypted_flag,
                                    lzma_method, data_byte, npy_shape, npy_truncated_data],
                         ids=lambda f: f.__name__)
def test_damaged_archive_is_a_value_error_naming_the_file(damage, tmp_path):
    path = tmp_path / "model.npz"
    fastrnn.save(path, {"rnn": fastrnn.LSTM(5, 5, seed=0), "head": fastrnn.Linear(5, 2)})
    raw = bytearray(path.read_bytes())
    damage(raw)
    bad = tmp_path / "damaged.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"damaged\.npz: "):
        fastrnn.load(bad)


def test_the_untouched_file_loads(tmp_path):
    """The cases above damage a file that loads as it was written."""
    path = tmp_path / "model.npz"
    model = {"rnn": fastrnn.LSTM(5, 5, seed=0), "head": fastrnn.Linear(5, 2)}
    fastrnn.save(path, model)
    for name, layer in fastrnn.load(path).items():
        for k, v in model[name].params.items():
            np.testing.assert_array_equal(layer.params[k], v)


def test_a_huge_num_layers_is_refused_at_once(tmp_path):
    """num_layers decides how many arrays load expects: a damaged one must not loop."""
    import json
    path = tmp_path / "model.npz"
    fastrnn.save(path, fastrnn.GRU(2, 3))
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["__fastrnn__"].item())
    header["layers"][0]["config"]["num_layers"] = 10 ** 15
    arrays["__fastrnn__"] = np.array(json.dumps(header))
    bad = tmp_path / "damaged.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"damaged\.npz: .*num_layers=10+, but the file"):
        fastrnn.load(bad)
