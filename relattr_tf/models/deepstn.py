"""DeepSTN: a Siamese ranker that finds where the attribute is, with a spatial transformer
(Singh & Lee, ECCV 2016; the ranker of ATTIC).

    image -> shared VGG16 trunk -> localisation net -> box (s, tx, ty)
          -> bilinear sampler crops the box from the image at the input size -> the same trunk
    score v = Dense([GAP(whole-image features), GAP(crop features)])   (deepstn)
            = Dense(GAP(crop features))                                 (deepstn_crop, stage 1)
    p = sigmoid(v_a - v_b)

As the reference: the localisation net is 1x1 conv 128 -> flatten -> ReLU -> FC 128 -> ReLU ->
FC 3, its output multiplied by a fixed [0.05, 1, 1] so the scale moves slowly; the scale row
starts with zero weights and bias s0 / 0.05 (a centred box of scale s0). A box that leaves the
image is pulled back by a penalty 0.5 (s t)^2 on |s t| > 1 (the gradient the reference
substitutes there). The localisation layers form their own parameter group, trained at a
tenth of the head's learning rate by the configs.
"""
import keras
from keras import layers, ops

from relattr_tf import models
from relattr_tf.models import blocks
from relattr_tf.models.vgg16 import build_vgg16_trunk

SCALE_RATIO = 0.05


@keras.saving.register_keras_serializable(package=blocks.PACKAGE)
class BoxParameters(layers.Layer):
    """FC 3 output -> (s, tx, ty): the fixed [ratio, 1, 1] multiplier, and the pull-back
    penalty of boxes that leave the image added as a loss."""

    def __init__(self, ratio=SCALE_RATIO, **kwargs):
        super().__init__(**kwargs)
        self.ratio = ratio

    def call(self, raw):
        raw = ops.cast(raw, "float32")
        box = raw * ops.convert_to_tensor([self.ratio, 1.0, 1.0], "float32")
        self.add_loss(ops.mean(blocks.box_outside_penalty(box[:, 0], box[:, 1], box[:, 2])))
        return box

    def get_config(self):
        return dict(super().get_config(), ratio=self.ratio)


@keras.saving.register_keras_serializable(package=blocks.PACKAGE)
class CropBox(layers.Layer):
    """(image, box (s, tx, ty)) -> the box's crop at `output_size`."""

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = tuple(output_size)
        self.sampler = blocks.BilinearSampler(self.output_size)

    def call(self, image, box):
        theta = blocks.box_transform(box[:, 0], box[:, 1], box[:, 2])
        return self.sampler(image, theta)

    def compute_output_shape(self, image_shape, box_shape):
        return (image_shape[0],) + self.output_size + (image_shape[-1],)

    def get_config(self):
        return dict(super().get_config(), output_size=self.output_size)


def build_localizer(feature_shape, scale_init=0.33, seed=None):
    """Trunk features -> (s, tx, ty)."""
    features = keras.Input(feature_shape, name="features")
    x = layers.Conv2D(128, 1, name="loc_conv",
                      kernel_initializer=keras.initializers.HeNormal(
                          blocks.layer_seed(seed, "loc_conv")))(features)
    x = layers.Flatten(name="loc_flatten")(x)
    x = layers.ReLU(name="loc_relu")(x)
    x = layers.Dense(128, activation="relu", name="loc_fc1",
                     kernel_initializer=keras.initializers.HeNormal(
                         blocks.layer_seed(seed, "loc_fc1")))(x)
    raw = layers.Dense(3, name="loc_fc2", dtype="float32",
                       kernel_initializer=keras.initializers.RandomNormal(
                           stddev=0.01, seed=blocks.layer_seed(seed, "loc_fc2")),
                       bias_initializer=keras.initializers.Constant(
                           [scale_init / SCALE_RATIO, 0.0, 0.0]))(x)
    return keras.Model(features, BoxParameters(name="box")(raw), name="localizer")


def zero_scale_row(localizer):
    """The reference starts the scale row of FC 3 at zero: every image gets the box s0."""
    fc = localizer.get_layer("loc_fc2")
    kernel, bias = fc.get_weights()
    kernel[:, 0] = 0.0
    fc.set_weights([kernel, bias])


def build_deepstn(image_size=64, width=1.0, crop_only=False, scale_init=0.33, seed=None):
    """DeepSTN as ModelParts: (image_a, image_b) -> p (B, 1); the scorer also ranks one image,
    the localizer gives its box."""
    trunk = build_vgg16_trunk(image_size, width)
    localizer = build_localizer(trunk.output.shape[1:], scale_init, seed)
    zero_scale_row(localizer)
    image = keras.Input((image_size, image_size, 3), name="image")
    whole = trunk(image)
    box = localizer(whole)
    crop = CropBox((image_size, image_size), name="crop")(image, box)
    pooled = layers.GlobalAveragePooling2D(name="crop_gap")(trunk(crop))
    if not crop_only:
        pooled = layers.Concatenate(name="global_local")(
            [layers.GlobalAveragePooling2D(name="global_gap")(whole), pooled])
    score_layer = layers.Dense(1, name="score", dtype="float32",
                               **blocks.new_layer_initializers(seed, "score"))
    scorer = keras.Model(image, score_layer(pooled), name="scorer")
    box_model = keras.Model(image, box, name="box_model")
    image_a = keras.Input((image_size, image_size, 3), name="image_a")
    image_b = keras.Input((image_size, image_size, 3), name="image_b")
    score_a, score_b = blocks.apply_siamese(scorer, image_a, image_b, name="siamese")
    logit = layers.Subtract(name="score_difference")([score_a, score_b])
    p = layers.Activation("sigmoid", dtype="float32", name="p_sigmoid")(logit)
    p = blocks.ClipProbability(1e-7, dtype="float32", name="p")(p)
    network = keras.Model([image_a, image_b], p, name="deepstn_crop" if crop_only else "deepstn")
    return models.ModelParts(
        network, groups={"trunk": [trunk], "localizer": [localizer], "head": [score_layer]},
        trunk=trunk, scorer=scorer, localizer=box_model)
