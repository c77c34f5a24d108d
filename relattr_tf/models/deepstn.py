"""DeepSTN: a Siamese ranker that finds where the attribute is, with a spatial transformer
(Singh & Lee, ECCV 2016; the ranker of ATTIC).

    image -> shared VGG16 trunk -> localisation net -> box (s, tx, ty)
          -> bilinear sampler crops the box from the image at the input size -> the same trunk
    score v = Dense([GAP(whole-image features), GAP(crop features)])   (deepstn)
            = Dense(GAP(crop features))                                 (deepstn_crop, stage 1)
    p = sigmoid(v_a - v_b)

As the reference: the localisation net is 1x1 conv 128 -> flatten -> ReLU -> FC 128 -> ReLU ->
FC 3, its output multiplied by a fixed [0.05, 1, 1] so the scale moves slowly; the scale row
starts with zero weights and bias s0 / 0.05, the translation rows near zero (N(0, 0.01), bias
0; the reference uses Torch's default uniform init), so the first box is centred at scale s0.
`transform="affine"` predicts all six entries of the transform instead. A box whose centre
leaves the image is pulled back by a penalty 0.5 (s t)^2 on each coordinate with |s t| > 1,
added to the ranking loss (the reference substitutes that gradient for the sample's). The localisation layers form their own parameter group, trained at a
tenth of the head's learning rate by the configs.
"""
import keras
from keras import layers, ops

from relattr_tf.models import blocks
from relattr_tf.models.parts import ModelParts
from relattr_tf.models.vgg16 import build_vgg16_trunk

SCALE_RATIO = 0.05


TRANSFORMS = ("box", "affine")


@keras.saving.register_keras_serializable(package=blocks.PACKAGE)
class TransformParameters(layers.Layer):
    """The localisation net's last FC -> the transform theta, flattened (B, 6).

    "box" (the reference): 3 outputs (s, tx, ty) times [ratio, 1, 1], theta = [[s, 0, s tx],
    [0, s, s ty]]. "affine": 6 outputs, the 2x2 part times the ratio. A box whose centre leaves
    the image (|theta[:, 2]| > 1) is pulled back by a loss 0.5 * centre^2.
    """

    def __init__(self, kind="box", ratio=SCALE_RATIO, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.ratio = kind, ratio

    def call(self, raw):
        raw = ops.cast(raw, "float32")
        if self.kind == "box":
            s, tx, ty = raw[:, 0] * self.ratio, raw[:, 1], raw[:, 2]
            theta = ops.reshape(blocks.box_transform(s, tx, ty), (-1, 6))
        else:
            theta = raw * ops.convert_to_tensor([self.ratio, self.ratio, 1.0] * 2, "float32")
        centre_x, centre_y = theta[:, 2], theta[:, 5]
        self.add_loss(ops.mean(blocks.box_outside_penalty(1.0, centre_x, centre_y)))
        return theta

    def get_config(self):
        return dict(super().get_config(), kind=self.kind, ratio=self.ratio)


@keras.saving.register_keras_serializable(package=blocks.PACKAGE)
class CropBox(layers.Layer):
    """(image, theta (B, 6)) -> the crop the transform selects, at `output_size`."""

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = tuple(output_size)
        self.sampler = blocks.BilinearSampler(self.output_size)

    def call(self, image, theta):
        return self.sampler(image, ops.reshape(theta, (-1, 2, 3)))

    def compute_output_shape(self, image_shape, theta_shape):
        return (image_shape[0],) + self.output_size + (image_shape[-1],)

    def get_config(self):
        return dict(super().get_config(), output_size=self.output_size)


def build_localizer(feature_shape, scale_init=0.33, seed=None, transform="box"):
    """Trunk features -> theta (B, 6), starting at a centred box of scale `scale_init`."""
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; known: {', '.join(TRANSFORMS)}")
    features = keras.Input(feature_shape, name="features")
    x = layers.Conv2D(128, 1, name="loc_conv",
                      kernel_initializer=keras.initializers.HeNormal(
                          blocks.layer_seed(seed, "loc_conv")))(features)
    x = layers.Flatten(name="loc_flatten")(x)
    x = layers.ReLU(name="loc_relu")(x)
    x = layers.Dense(128, activation="relu", name="loc_fc1",
                     kernel_initializer=keras.initializers.HeNormal(
                         blocks.layer_seed(seed, "loc_fc1")))(x)
    start = scale_init / SCALE_RATIO
    bias = [start, 0.0, 0.0] if transform == "box" else [start, 0.0, 0.0, 0.0, start, 0.0]
    raw = layers.Dense(len(bias), name="loc_fc2", dtype="float32",
                       kernel_initializer=keras.initializers.RandomNormal(
                           stddev=0.01, seed=blocks.layer_seed(seed, "loc_fc2")),
                       bias_initializer=keras.initializers.Constant(bias))(x)
    # float32 under any policy: a float16 or bfloat16 theta would round the slow scale steps.
    theta = TransformParameters(transform, name="theta", dtype="float32")(raw)
    localizer = keras.Model(features, theta, name="localizer")
    # The reference starts the scale row at zero: every image gets the box s0 at first.
    fc = localizer.get_layer("loc_fc2")
    kernel, bias = fc.get_weights()
    kernel[:, [0] if transform == "box" else [0, 1, 3, 4]] = 0.0
    fc.set_weights([kernel, bias])
    return localizer


def build_deepstn(image_size=64, width=1.0, crop_only=False, scale_init=0.33, seed=None,
                  transform="box", trunk_init="glorot"):
    """DeepSTN as ModelParts: (image_a, image_b) -> p (B, 1); the scorer also ranks one image,
    the localizer gives its transform theta (B, 6)."""
    trunk = build_vgg16_trunk(image_size, width, init=trunk_init)
    localizer = build_localizer(trunk.output.shape[1:], scale_init, seed, transform)
    image = keras.Input((image_size, image_size, 3), name="image")
    whole = trunk(image)
    theta = localizer(whole)
    crop = CropBox((image_size, image_size), name="crop", dtype="float32")(image, theta)
    pooled = layers.GlobalAveragePooling2D(name="crop_gap")(trunk(crop))
    if not crop_only:
        pooled = layers.Concatenate(name="global_local")(
            [layers.GlobalAveragePooling2D(name="global_gap")(whole), pooled])
    score_layer = layers.Dense(1, name="score", dtype="float32",
                               **blocks.new_layer_initializers(seed, "score"))
    scorer = keras.Model(image, score_layer(pooled), name="scorer")
    transform_model = keras.Model(image, theta, name="transform_model")
    network = blocks.score_pair_model(scorer, image_size,
                                      name="deepstn_crop" if crop_only else "deepstn")
    return ModelParts(
        network, groups={"trunk": [trunk], "localizer": [localizer], "head": [score_layer]},
        trunk=trunk, scorer=scorer, localizer=transform_model,
        logits=blocks.score_pair_logits(network))
