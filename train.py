#!/usr/bin/env python
"""Train, evaluate, audit and publish brain-tumour MRI classifiers.

    python train.py train    --data DATA --out runs/NAME [--no-pretrained --recipe scratch]
    python train.py crossval --data DATA --origins CSV --holdout sartaj --out runs/NAME [recipe options]
    python train.py localisation --checkpoint DIR --data DATA --masks MASKS --out DIR
    python train.py selective --checkpoint DIR --data DATA --out DIR [--origins CSV --collection NAME] [--member DIR]
    python train.py heldout-summary --run sartaj=RUN [--run figshare=RUN] --out assets/metrics/crossval.json
    python train.py evaluate --checkpoint DIR --data DATA --out DIR
    python train.py audit    --data DATA [--out DIR]
    python train.py screening --checkpoint DIR --data DATA --out DIR
    python train.py robustness --checkpoint DIR --data DATA --out DIR [--validation-of RUN | --origins CSV
    --collection NAME]
    python train.py sequence-check --checkpoint DIR --data DATA [--labels assets/sequence-labels.csv]
    python train.py calibrate --run runs/NAME
    python train.py export   --checkpoint DIR --format onnx [--data DATA]
    python train.py push     --checkpoint DIR --repo-id USER/NAME
    python train.py lgg-eval --checkpoint DIR --lgg LGG --out DIR [--sites DU]
    python train.py release  --recipe recipes/NAME.yaml --data DATA [--masks M --lgg L] --out runs/NAME [--install]
    python train.py check-rules RUN --recipe recipes/NAME.yaml

DATA is a Kaggle-layout folder (DATA/Training/<class>/..., DATA/Testing/<class>/...)
or a single folder of class sub-folders. Training never reads Testing.
"""

import sys

from brainmri.commands import main

if __name__ == "__main__":
    sys.exit(main())
