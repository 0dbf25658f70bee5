"""The classifiers: a small CNN for CPUs and tests, and InceptionResNetV2 with a new head.

Both take uint8 images (what `train.data` yields), scale them to [-1, 1] (what
InceptionResNetV2 expects) in their first layer, on the accelerator, and return float32 logits,
also under mixed precision, so the loss is computed in float32. A saved model therefore takes
decoded images as they are.

    model = build_model("small_cnn", num_classes=12, image_size=64)
"""

from __future__ import annotations

import logging
import math

import keras

log = logging.getLogger(__name__)


def image_input(image_size: int):
    """uint8 [S, S, 3] images in, [-1, 1] floats out (in the compute dtype)."""
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    return inputs, to_model_range(inputs)


def to_model_range(images):
    """uint8 [0, 255] -> [-1, 1]: done by the model, on the device, not by the input pipeline."""
    return keras.layers.Rescaling(2.0 / 255.0, offset=-1.0, name="to_model_range")(images)


def conv_bn(x, filters: int, kernel_size: int = 3, strides: int = 1, name: str = ""):
    """Bias-free conv -> BatchNorm(scale=False) -> ReLU, like IRv2's `conv2d_bn`.

    BN right after a bias-free conv makes the loss invariant to the scale of the conv kernel:
    that is what makes Adam + coupled L2 let the kernel norms grow (see docs/weight_decay.md).
    The BN has no gamma because the following ReLU + next conv can absorb any scale.
    """
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(scale=False, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def small_cnn(num_classes: int, image_size: int, widths=(32, 64, 128, 128)) -> keras.Model:
    """Four stride-2 stages of conv_bn, global average pooling, a dense head (~0.3M params)."""
    inputs, x = image_input(image_size)
    for i, width in enumerate(widths):
        x = conv_bn(x, width, strides=2, name=f"stage{i}a")
        x = conv_bn(x, width, name=f"stage{i}b")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="small_cnn")


def inception_resnet_v2(num_classes: int, image_size: int, weights: str = "none",
                        freeze_backbone: bool = False) -> keras.Model:
    """keras.applications.InceptionResNetV2 without its top, plus a new `num_classes`-way head.

    `weights`: "none" (random init), "imagenet" (downloaded by Keras) or a path to a no-top
    weights file. With `freeze_backbone` the backbone also runs in inference mode, so its
    BatchNorm statistics stay those of the pretrained weights.
    """
    backbone = keras.applications.InceptionResNetV2(
        include_top=False, weights=None if weights == "none" else weights,
        input_shape=(image_size, image_size, 3), pooling="avg")
    backbone.trainable = not freeze_backbone
    inputs, x = image_input(image_size)
    features = backbone(x, training=False) if freeze_backbone else backbone(x)
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(features)
    return keras.Model(inputs, logits, name="inception_resnet_v2")


def build_model(name: str, num_classes: int, image_size: int, *, weights: str = "none",
                freeze_backbone: bool = False) -> keras.Model:
    if name == "small_cnn":
        model = small_cnn(num_classes, image_size)
    elif name == "inception_resnet_v2":
        model = inception_resnet_v2(num_classes, image_size, weights, freeze_backbone)
    else:
        raise ValueError(f"unknown model {name!r}")
    log.info("Model %s: %d classes, %d px, %s trainable parameters", name, num_classes,
             image_size, f"{sum(math.prod(v.shape) for v in model.trainable_variables):,}")
    return model
