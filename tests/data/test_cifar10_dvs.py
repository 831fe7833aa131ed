import pytest

from adalif.data.cifar10_dvs import file_name, split_indices


def test_the_three_split_conventions_of_data_formats_md():
    tebn, tet, lex = split_indices("tebn"), split_indices("tet"), split_indices("lexicographic")
    assert tebn.test == list(range(100)) and len(tebn.train) == 900 and tebn.train[0] == 100
    assert tet.test == list(range(900, 1000)) and tet.train == list(range(900))
    assert lex.test == list(range(91, 100)) + list(range(909, 1000))
    for s in (tebn, tet, lex):
        assert sorted(s.train + s.test) == list(range(1000))
    assert file_name(0, 7) == "airplane/cifar10_airplane_7.aedat" and file_name(9, 999).startswith("truck/")
    with pytest.raises(ValueError, match="split: unknown value 'random'"):
        split_indices("random")
