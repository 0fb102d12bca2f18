"""brainmri.evaluation.report: saved evaluations turned into words for people."""

from brainmri.evaluation import report


def test_about_reads_the_served_release_figures():
    metrics = {"full": {"accuracy": 0.912}}
    crossval = {"heldout": {"sartaj": {"metrics": {"accuracy": 0.5, "per_class": {"glioma": {"recall": 0.25}}}}}}
    about = report.about_markdown(metrics, crossval, {"contrast inversion (T2-like)": {"accuracy": 0.333}}, "en")
    assert "right on about 91 in 100" in about and "87 in 100" not in about  # not the bundled model's figures
    assert "without SARTAJ is right on 50 in 100 SARTAJ slices (gliomas: 25 in 100)" in about
    assert "right on 33 in 100 Testing slices" in about
    french = report.about_markdown(metrics, None, None, "fr")
    assert "environ 91 coupes sur 100" in french and "sans SARTAJ" not in french
    assert "No evaluation is saved for this model" in report.about_markdown(None, None, None, "en")
