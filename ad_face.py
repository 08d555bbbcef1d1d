#!/usr/bin/env python
"""MTER fine-tuning of InsightFace ArcFace models: not yet (see the face issue)."""
import sys

if __name__ == '__main__':
    sys.exit('ad_face.py: not yet implemented; train on MNIST-format data with ad_mnist.py')
