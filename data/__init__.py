"""Data readers and the command-line tools that build InsightFace-format datasets."""
