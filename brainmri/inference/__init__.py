"""From a release folder to an answer: preprocessing, the release, backends, the predictor, heatmaps, the verdict.

Uses only :mod:`brainmri.io`; never training, evaluation or the page (a test checks it).
"""
