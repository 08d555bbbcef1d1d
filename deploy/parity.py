"""Does the ONNX file compute what MXNet computes? Figures for ``export_onnx.py --check``.

The error is relative to the output's scale: max|onnx - mxnet| / max|mxnet| over the whole
batch (a per-element relative error is meaningless where an output is near zero).  Every check
runs the batch as a whole and its first image alone, so the dynamic batch axis is exercised.
"""
import os

import numpy as np

DEFAULT_TOLERANCE = 1e-4
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def relative_error(actual, reference):
    """max|actual - reference| / max|reference| (float64); 0 when both are all zeros."""
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        raise ValueError('shapes differ: %s vs %s' % (actual.shape, reference.shape))
    diff = float(np.max(np.abs(actual - reference))) if actual.size else 0.0
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float('inf')
    return diff / scale


def random_images(input_shape, pixel_max, count, seed=0):
    """``count`` float32 images (C, H, W) uniform in [0, pixel_max]."""
    rng = np.random.RandomState(seed)
    return rng.uniform(0, pixel_max, (count,) + tuple(input_shape)).astype(np.float32)


def _image_files(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, f) for f in os.listdir(path)
                            if f.lower().endswith(IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def read_images(paths, input_shape, pixel_max, count):
    """Up to ``count`` float32 images (C, H, W) in [0, pixel_max] from image files, folders of
    them, or an InsightFace ``.bin`` set: RGB for 3 channels (aligned crops, resized to the
    input like eval/lfw.py), grey for 1 channel."""
    import cv2
    channels, size = input_shape[0], tuple(input_shape[1:])
    images = []
    for path in _image_files(paths):
        if len(images) >= count:
            break
        if path.lower().endswith('.bin'):
            from eval.bin_sets import load_target
            faces, _ = load_target(path, size, resize=True)  # to the exported input
            faces = faces[:count - len(images)]
            if channels == 1:
                faces = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None] for f in faces])
            images += list(faces)
            continue
        if channels == 3:
            from eval.lfw import read_image
            img = read_image(path, size)
        else:
            img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise ValueError('%s: cannot read the image' % path)
            if img.shape != size:
                img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            img = img[..., None]
        images.append(img)
    if not images:
        raise ValueError('no images in %s (expected %s files, folders of them, or a .bin)'
                         % (', '.join(paths), '/'.join(IMAGE_SUFFIXES)))
    batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)
    return batch * np.float32(pixel_max / 255.0)


def compare(onnx_network, mxnet_network, images, tolerance=DEFAULT_TOLERANCE):
    """Runs both networks on ``images`` and on its first image alone.

    Returns a list of figure dicts (batch, max_abs_diff, max_abs_reference, relative, tolerance,
    ok), one per batch size."""
    figures = []
    batches = [images] + ([images[:1]] if len(images) > 1 else [])
    for batch in batches:
        got = onnx_network(batch)
        want = mxnet_network.predict(batch, batch_size=len(batch))
        rel = relative_error(got, want)
        figures.append(dict(batch=int(len(batch)),
                            max_abs_diff=float(np.max(np.abs(got.astype(np.float64) - want))),
                            max_abs_reference=float(np.max(np.abs(want))),
                            relative=rel, tolerance=float(tolerance), ok=bool(rel <= tolerance)))
    return figures


def format_figures(figures):
    return '\n'.join('check batch %d: max|onnx - mxnet| %.3g, max|mxnet| %.4g, relative %.3g '
                     '(tolerance %.0e): %s' % (f['batch'], f['max_abs_diff'],
                                               f['max_abs_reference'], f['relative'],
                                               f['tolerance'], 'ok' if f['ok'] else 'FAILED')
                     for f in figures)
