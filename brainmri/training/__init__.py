"""Training a release: options, the trainer, the network, calibration, export and recipes."""
