"""scripts/recall_by_lesion_size.py: DU's glioma recall by lesion share, per sequence or by the slice's level."""

from scripts.recall_by_lesion_size import by_level, by_sequence, slice_facts


def _row(patient, number, sequence, label, predicted):
    return dict(path=f"{patient}/{number:03d}_{sequence}.jpg", label=label, predicted=predicted, sequence=sequence)


def test_a_slices_share_and_level_come_from_slices_csv(lgg_root):
    facts = slice_facts(lgg_root)
    share, level = facts["TCGA_CS_0001_20000101/010"]  # a tumour slice of a 20-slice scan
    assert 0.01 < share < 1 and level == 9 / 19
    assert facts["TCGA_CS_0001_20000101/001"] == (0.0, 0.0) and facts["TCGA_CS_0001_20000101/020"][1] == 1.0


def test_recall_is_counted_per_cell():
    facts = {"P/001": (0.015, 0.2), "P/002": (0.015, 0.3), "P/003": (0.05, 0.6)}
    facts |= {"P/004": (0.0, 0.0), "P/005": (0.0, 0.9)}  # (the lesion's share, the level in the scan)
    rows = [
        _row("P", 1, "flair", "glioma", "glioma"),
        _row("P", 2, "flair", "glioma", "notumor"),
        _row("P", 2, "t1", "glioma", "meningioma"),
        _row("P", 3, "t1c", "glioma", "glioma"),
        _row("P", 4, "flair", "notumor", "notumor"),  # the scan's first slice still has a level
        _row("P", 5, "t1", "notumor", "glioma"),
    ]
    sequence = by_sequence(rows, facts)
    assert sequence[0] == "| lesion's share | flair | t1 | t1c |"
    assert sequence[2] == "| 1–2 % | 50 % of 2 | 0 % of 1 | — |" and sequence[4] == "| 4–8 % | — | — | 100 % of 1 |"
    level = by_level(rows, facts)
    assert level[2] == "| 0–0.4 | 33 % of 3 | — | — | — | 100 % of 1 |"
    assert level[4] == "| 0.5–0.7 | — | — | 100 % of 1 | — | — |"
    assert level[6] == "| 0.8–1 | — | — | — | — | 0 % of 1 |"
