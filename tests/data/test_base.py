import numpy as np
import pytest

from pcbm.data import Sample, SampleDataset, Subset, open_dataset, parse_spec, register_dataset


class _Toy(SampleDataset):
    name = "toy"

    def __init__(self, n: int, subjects: int):
        self.n, self.subjects = n, subjects

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return Sample(image=np.full((4, 4), i, np.uint8), id=f"img{i}", subject=self.subject_of(i))

    def subject_of(self, i: int) -> str:
        return f"s{i % self.subjects}"


@register_dataset("toy_for_tests")
def _toy_factory(path, n=50, subjects=10):
    return _Toy(int(n), int(subjects))


def test_parse_spec_forms():
    assert parse_spec("phantom") == ("phantom", None, {})
    assert parse_spec("phantom:n=20,seed=3,style=clinic") == ("phantom", None, {"n": 20, "seed": 3, "style": "clinic"})
    assert parse_spec("hc18:/data/hc18") == ("hc18", "/data/hc18", {})
    kind, path, opts = parse_spec("fetal_planes_db:/x/y?machine=Voluson E6&split=val")
    assert (kind, path, opts) == ("fetal_planes_db", "/x/y", {"machine": "Voluson E6", "split": "val"})


@pytest.mark.parametrize("bad", ["", "   ", "phantom:n20"])
def test_parse_spec_rejects_malformed(bad):
    with pytest.raises(ValueError):
        parse_spec(bad)


def test_unknown_kind_suggests():
    with pytest.raises(ValueError, match="did you mean 'toy_for_tests'"):
        open_dataset("toy_for_test")


def test_subject_split_is_disjoint_deterministic_and_complete():
    ds = _Toy(200, 40)
    tr, va = ds.split_indices("train", 0.25, seed=1), ds.split_indices("val", 0.25, seed=1)
    assert sorted(tr + va) == list(range(200))
    assert {ds.subject_of(i) for i in tr}.isdisjoint({ds.subject_of(i) for i in va})
    assert va == ds.split_indices("val", 0.25, seed=1)
    assert va != ds.split_indices("val", 0.25, seed=2)
    assert 0.1 < len(va) / 200 < 0.45


def test_open_dataset_split_returns_subset():
    va = open_dataset("toy_for_tests:n=30,subjects=6", split="val", val_fraction=0.5)
    assert isinstance(va, Subset) and 0 < len(va) < 30
    assert all(s.subject in {va.subject_of(i) for i in range(len(va))} for s in va)


def test_sample_validation():
    with pytest.raises(TypeError, match="2-D uint8"):
        Sample(image=np.zeros((4, 4, 3), np.uint8), id="rgb")
    with pytest.raises(ValueError, match="mask 'head' has shape"):
        Sample(image=np.zeros((4, 4), np.uint8), masks={"head": np.zeros((3, 4), bool)}, id="x")


def test_spec_errors_name_the_spec_and_the_choices():
    from pcbm.errors import InputError

    assert parse_spec("phantom?n=3&seed=2") == ("phantom", None, {"n": 3, "seed": 2})
    with pytest.raises(InputError, match="option 'n' given twice"):
        parse_spec("phantom:n=1,n=2")
    with pytest.raises(InputError, match=r"option n in data spec 'toy_for_tests:x\?n=x' must be an integer, got 'x'"):
        open_dataset("toy_for_tests:x?n=x")
    with pytest.raises(InputError, match="unknown option 'm' in data spec.*known: n, subjects, split"):
        open_dataset("toy_for_tests:x?m=3")
    with pytest.raises(InputError, match="unknown split 'test'.*choose train, val, all"):
        open_dataset("toy_for_tests:x?split=test")
    with pytest.raises(InputError, match="dataset 'toy_for_tests:x\\?n=0' is empty"):
        open_dataset("toy_for_tests:x?n=0")
    assert len(open_dataset("toy_for_tests:x?n=0", lenient=True)) == 0  # check reports it instead
    assert len(open_dataset("toy_for_tests:x?n=4", lenient=True)) == 4  # no lenient parameter: not passed
