"""Training-side code shared by ad_mnist.py and ad_face.py."""
