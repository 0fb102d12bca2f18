"""Any input file to grayscale arrays: images, DICOM, volumes (the leaf layer: imports nothing else of brainmri)."""
