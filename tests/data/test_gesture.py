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
