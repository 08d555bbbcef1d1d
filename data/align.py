"""Face alignment to the ArcFace 5-point template (eyes, nose tip, mouth corners).

The template is InsightFace's, defined for 112x112 crops; a 112x96 crop uses the same points
moved 8 px left.  Other sizes scale the 112x112 template uniformly by H/112 and centre it
horizontally, which gives exactly those two cases.  The similarity transform (rotation, uniform
scale, translation) is the least-squares fit of the 5 landmarks onto the template, estimated
with OpenCV (scikit-image, which InsightFace uses, is not part of this stack).
"""
import cv2
import numpy as np

__all__ = ['ARCFACE_TEMPLATE_112', 'arcface_template', 'similarity_matrix', 'align_face']

# (x, y) of left eye, right eye, nose tip, left and right mouth corner in a 112x112 crop.
ARCFACE_TEMPLATE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041]], dtype=np.float32)


def arcface_template(image_size=(112, 112)):
    """The 5 template points (x, y) for a crop of ``image_size`` = (H, W)."""
    height, width = _size_pair(image_size)
    scale = height / 112.0
    points = ARCFACE_TEMPLATE_112 * scale
    points[:, 0] += (width - 112.0 * scale) / 2.0
    return points


def similarity_matrix(landmarks5, image_size=(112, 112)):
    """2x3 matrix of the similarity transform taking ``landmarks5`` (5 x (x, y)) to the template.

    Least squares over all five points: RANSAC with a threshold no point can exceed keeps every
    point as an inlier, and OpenCV then refines the model on all inliers (Levenberg-Marquardt).
    """
    src = _landmark_array(landmarks5)
    dst = arcface_template(image_size)
    matrix, _ = cv2.estimateAffinePartial2D(
        src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), method=cv2.RANSAC,
        ransacReprojThreshold=1e7, maxIters=1, refineIters=50)
    if matrix is None:
        raise ValueError('cannot fit a similarity transform to landmarks %s (degenerate points?)'
                         % src.tolist())
    return matrix


def align_face(img, landmarks5, image_size=(112, 112)):
    """Warp ``img`` (HxWxC or HxW, any channel order) so its landmarks land on the template.

    Returns an array of shape ``image_size`` (+ channels) and the input dtype; pixels from outside
    the source image are black, as in InsightFace.
    """
    height, width = _size_pair(image_size)
    matrix = similarity_matrix(landmarks5, (height, width))
    return cv2.warpAffine(img, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _landmark_array(landmarks5):
    points = np.asarray(landmarks5, dtype=np.float32)
    if points.size != 10:
        raise ValueError('expected 5 landmarks (x, y), got an array of shape %s' % (points.shape,))
    points = points.reshape(5, 2)
    if not np.all(np.isfinite(points)):
        raise ValueError('landmarks must be finite, got %s' % points.tolist())
    return points


def _size_pair(image_size):
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    height, width = (int(v) for v in image_size)
    if height <= 0 or width <= 0:
        raise ValueError('image_size must be positive (H, W), got %s' % (image_size,))
    return height, width
