"""AEDAT 2.0 and 3.1 decoding against the byte layouts and worked examples of data-formats.md."""

import struct

import pytest

from adalif.data.aedat import EventFileError, read_aedat2, read_aedat31

AEDAT2_HEADER = (
    b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
    b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
    b"# Timestamps tick is 1 us\r\n"
)
# data-formats.md 4.3 worked example: 8 record bytes -> SpikingJelly (x, y, p)
AEDAT2_EXAMPLE = bytes.fromhex("0000000000000064" "00000a0b000000c8" "000003ff0000012c" "00007f8000000190")


def test_aedat2_worked_example_spikingjelly_and_jaer(tmp_path):
    path = tmp_path / "cifar10_airplane_0.aedat"
    path.write_bytes(AEDAT2_HEADER + AEDAT2_EXAMPLE)
    ev = read_aedat2(path)
    assert ev["t"].tolist() == [100, 200, 300, 400]
    assert ev["x"].tolist() == [127, 117, 124, 0]
    assert ev["y"].tolist() == [127, 122, 0, 63]
    assert ev["p"].tolist() == [1, 0, 0, 1]
    jaer = read_aedat2(path, convention="jaer")
    assert jaer["x"].tolist() == [127, 122, 0, 63] and jaer["y"].tolist() == [0, 10, 3, 127]


def test_aedat2_zero_events_and_errors(tmp_path):
    empty = tmp_path / "empty.aedat"
    empty.write_bytes(AEDAT2_HEADER)
    assert len(read_aedat2(empty)) == 0
    short = tmp_path / "short.aedat"
    short.write_bytes(AEDAT2_HEADER + AEDAT2_EXAMPLE[:-3])
    with pytest.raises(EventFileError, match=r"short.aedat: body of 29 bytes is not a whole number of 8-byte events"):
        read_aedat2(short)
    bad = tmp_path / "bad.aedat"
    bad.write_bytes(b"#!AER-DAT3.1\r\n" + AEDAT2_EXAMPLE)
    with pytest.raises(EventFileError, match="bad.aedat: bad header: expected a first line b'#!AER-DAT2.0'"):
        read_aedat2(bad)


def aedat3_header(newline=b"\r\n"):
    lines = [b"#!AER-DAT3.1", b"#Format: RAW", b"#Source 1: DVS128", b"#Start-Time: 2017-01-01 00:00:00 (TZ+0000)", b"#!END-HEADER"]
    return newline.join(lines) + newline


def packet(kind, events, overflow=0, size=8):
    """A packet: 28-byte header then (data, timestamp) little-endian pairs."""
    head = struct.pack("<hhiiiiii", kind, 1, size, 4, overflow, len(events), len(events), len(events))
    return head + b"".join(struct.pack("<Ii", d, t) for d, t in events)


def polarity(x, y, on, t, valid=True):
    return (x << 17) | (y << 2) | (int(on) << 1) | int(valid), t


def test_aedat31_worked_example_bytes():
    # data-formats.md 5.3: a valid ON event at x=1, y=2 is data 0x0002000B; with t=1000 its bytes are
    # 0b 00 02 00 e8 03 00 00; the header of a one-event packet is the 28 bytes below.
    assert polarity(1, 2, True, 1000)[0] == 0x0002000B
    expected_header = "01000100" "08000000" "04000000" "00000000" "01000000" "01000000" "01000000"
    assert packet(1, [polarity(1, 2, True, 1000)]) == bytes.fromhex(expected_header + "0b000200e8030000")


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_aedat31_skips_special_packets_applies_overflow_and_keeps_invalid_like_spikingjelly(tmp_path, newline):
    body = (
        packet(1, [polarity(1, 2, True, 1000), polarity(127, 0, False, 1500)])
        + packet(0, [(0x12345678, 1600)])  # a special event packet between polarity packets
        + packet(1, [polarity(5, 6, True, 5, valid=False), polarity(7, 8, False, 5)], overflow=1)
    )
    path = tmp_path / "user01_fluorescent.aedat"
    path.write_bytes(aedat3_header(newline) + body)
    # Default: SpikingJelly never reads the valid bit, so every published Gesture number kept them.
    ev = read_aedat31(path)
    assert ev["t"].tolist() == [1000, 1500, 2147483653, 2147483653]
    assert ev["x"].tolist() == [1, 127, 5, 7] and ev["y"].tolist() == [2, 0, 6, 8] and ev["p"].tolist() == [1, 0, 1, 0]
    valid = read_aedat31(path, keep_invalid=False)
    assert valid["t"].tolist() == [1000, 1500, 2147483653] and valid["x"].tolist() == [1, 127, 7]


def test_aedat31_reads_every_slot_of_a_packet_as_spikingjelly_does(tmp_path):
    """A packet with 3 slots of which eventNumber says 2 are used: SpikingJelly decodes all
    eventCapacity slots; keep_invalid=False reads the eventNumber first valid ones."""
    events = [polarity(1, 2, True, 10), polarity(3, 4, False, 20), polarity(9, 9, True, 30)]
    head = struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 3, 2, 2)  # capacity 3, number 2, valid 2
    path = tmp_path / "slots.aedat"
    path.write_bytes(aedat3_header() + head + b"".join(struct.pack("<Ii", d, t) for d, t in events))
    assert read_aedat31(path)["t"].tolist() == [10, 20, 30]
    assert read_aedat31(path, keep_invalid=False)["t"].tolist() == [10, 20]


def test_aedat31_errors_name_the_file(tmp_path):
    no_end = tmp_path / "no_end.aedat"
    no_end.write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n")
    with pytest.raises(EventFileError, match="no_end.aedat: no #!END-HEADER line"):
        read_aedat31(no_end)
    cut = tmp_path / "cut.aedat"
    cut.write_bytes(aedat3_header() + packet(1, [polarity(1, 2, True, 3)] * 4)[:-5])
    with pytest.raises(EventFileError, match="cut.aedat: packet at byte .* announces 4 events of 8 bytes"):
        read_aedat31(cut)
    short_head = tmp_path / "short_head.aedat"
    short_head.write_bytes(aedat3_header() + b"\x01\x00\x01")
    with pytest.raises(EventFileError, match="short_head.aedat: truncated packet header"):
        read_aedat31(short_head)
    empty = tmp_path / "empty.aedat"
    empty.write_bytes(aedat3_header())
    assert len(read_aedat31(empty)) == 0
