"""DVS128 Gesture labels and segments: header, a class twice, overlap, an empty segment."""

import numpy as np
import pytest

from adalif.data.aedat import EventFileError
from adalif.data.frames import EVENT_DTYPE, integrate
from adalif.data.gesture import Segment, cut, read_labels, read_trials


def test_labels_cut_and_empty_segment(tmp_path):
    csv = tmp_path / "user01_fluorescent_labels.csv"
    csv.write_bytes(b"class,startTime_usec,endTime_usec\r\n1,100,200\r\n8,150,260\r\n8,300,400\r\n2,500,600\r\n")
    segs = read_labels(csv)
    assert segs == [Segment(0, 100, 200), Segment(7, 150, 260), Segment(7, 300, 400), Segment(1, 500, 600)]
    ev = np.zeros(8, dtype=EVENT_DTYPE)
    ev["t"] = [90, 100, 150, 199, 200, 259, 300, 399]
    parts = cut(ev, segs)
    assert [p["t"].tolist() for p in parts] == [[100, 150, 199], [150, 199, 200, 259], [300, 399], []]
    frames = integrate(parts[3], 4, 128, 128)
    assert frames.shape == (4, 2, 128, 128) and frames.sum() == 0


def test_trials_and_errors(tmp_path):
    trials = tmp_path / "trials_to_test.txt"
    trials.write_text("user24_fluorescent.aedat\nuser24_led.aedat\n\n")
    assert read_trials(trials) == ["user24_fluorescent.aedat", "user24_led.aedat"]
    no_header = tmp_path / "a_labels.csv"
    no_header.write_text("1,100,200\n")
    with pytest.raises(EventFileError, match="a_labels.csv: expected the header line"):
        read_labels(no_header)
    bad = tmp_path / "b_labels.csv"
    bad.write_text("class,startTime_usec,endTime_usec\n12,1,2\n")
    with pytest.raises(EventFileError, match="b_labels.csv: line 2: class 12 outside 1..11"):
        read_labels(bad)
    junk = tmp_path / "c_labels.csv"
    junk.write_text("class,startTime_usec,endTime_usec\n1,x,2\n")
    with pytest.raises(EventFileError, match="c_labels.csv: line 2 is not 'class,start,end' integers"):
        read_labels(junk)


def test_cut_keeps_the_file_order_of_each_segment_as_spikingjelly():
    # SpikingJelly cuts with a boolean mask, so a segment keeps the recording's own order; with
    # split_by="number" that order decides the frame of every event.
    ev = np.zeros(6, dtype=EVENT_DTYPE)
    ev["t"] = [100, 130, 120, 150, 140, 300]
    ev["x"] = np.arange(6)
    (part,) = cut(ev, [Segment(0, 110, 200)])
    assert part["t"].tolist() == [130, 120, 150, 140] and part["x"].tolist() == [1, 2, 3, 4]


def test_spikingjelly_label_order_is_the_string_sorted_folder_order():
    from adalif.data.gesture import SPIKINGJELLY_TARGET, relabel

    # The permutation of the issue, checked by running SpikingJelly's dataset code.
    expected = {0: 0, 1: 1, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 10: 2}
    assert {k: int(v) for k, v in enumerate(SPIKINGJELLY_TARGET)} == expected
    assert relabel(np.array([10, 2, 0]), "spikingjelly").tolist() == [2, 3, 0]
    assert relabel(np.array([10, 2, 0]), "csv").tolist() == [10, 2, 0]
    with pytest.raises(ValueError, match=r"label_order: got 'tonic', expected one of \['csv', 'spikingjelly'\]"):
        relabel(np.array([1]), "tonic")
