"""Labelled image sets for training and evaluation: folders, collections, TCGA-LGG, duplicates, masks, augmentation."""
