"""The models take uint8 images and scale them to [-1, 1] themselves."""

import numpy as np
import tensorflow as tf

from train import models


def test_models_scale_uint8_images_to_minus_one_one():
    model = models.build_model("small_cnn", num_classes=3, image_size=16)
    assert model.inputs[0].dtype == "uint8"
    scale = models.to_model_range
    out = scale(tf.constant([[0, 255, 128]], tf.uint8))
    np.testing.assert_allclose(out.numpy(), [[-1.0, 1.0, 128 / 127.5 - 1]], atol=1e-6)
    logits = model(np.zeros([2, 16, 16, 3], np.uint8), training=False)
    assert logits.shape == (2, 3) and logits.dtype == tf.float32
