"""The VGG16 convolutional trunk (13 conv layers, no fully connected layers).

Width 1 is exactly VGG16's trunk (14,714,688 parameters) and loads the standard Keras
"notop" ImageNet weight file (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5) from a local
path. Smaller widths scale every conv layer's channels, for cheap CPU variants.
`save_notop_weights` writes a trunk in that file's layout (any width), which is how
`relattr_tf.pretrain` hands over the trunk it trains.
Inputs are RGB floats in [0, 1]; the trunk applies the ImageNet (caffe) mean itself.
"""
import h5py
import keras
import numpy as np
from keras import layers

from relattr_tf.models.blocks import apply_vgg_block

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
VGG16_TRUNK_PARAMS = 14_714_688
# The trunk sees 0-255 pixels less ImageNet's mean, as ImageNet's weights expect; a pixel spread
# evenly over 0-255 has this standard deviation. He's initialisation assumes unit-scale input,
# so a He trunk also divides its input by it (the benchmark's pictures: trunk output std 40
# without, 0.5 with). Its weight files fold the division into block1_conv1's kernel, so they
# read 0-255 input exactly as ImageNet's file does.
PIXEL_STD = 255.0 / 12 ** 0.5


def channels(filters, width):
    return max(4, int(round(filters * width)))


def build_vgg16_trunk(image_size, width=1.0, name="trunk", init="glorot"):
    """keras.Model: (B, S, S, 3) RGB in [0, 1] -> (B, S/32, S/32, 512 * width) features.

    init: the conv kernels' initialisation from scratch. "glorot" (Keras' VGG16) shrinks the
    signal about 2x per ReLU layer, 8,000x over the 13; "he" keeps its scale (He et al.
    2015), which a trunk trained from scratch needs to learn more than its strongest cue, with
    its input divided by PIXEL_STD so the trunk starts near unit scale (the same function as
    block1_conv1's initial weights divided by it, with that layer's weights kept at the others'
    scale). Glorot is left as Keras has it: its shrinking, not the input, sets its scale."""
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(255.0, name="to_pixels")(image)
    scale = PIXEL_STD if init == "he" else 1.0
    x = layers.Normalization(mean=IMAGENET_MEAN_RGB, variance=(scale ** 2,) * 3,
                             name="imagenet_mean")(x)
    initializer = {"glorot": "glorot_uniform", "he": "he_normal"}[init]
    for block, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        x = apply_vgg_block(x, channels(filters, width), convs, block,
                            kernel_initializer=initializer)
    return keras.Model(image, x, name=name)


def input_scale(trunk):
    """What the trunk divides its mean-free 0-255 input by (1, or PIXEL_STD for He)."""
    return float(np.sqrt(np.asarray(trunk.get_layer("imagenet_mean").variance).ravel()[0]))


def _open(path):
    try:
        return h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise ValueError(f"{path}: cannot read the VGG16 weight file ({e})") from None


def first_conv_channels(path):
    """Output channels of block1_conv1 in a VGG16 notop .h5 file (64 for ImageNet's)."""
    with _open(path) as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "block1_conv1" not in root:
            raise ValueError(f"{path}: no block1_conv1 weights (is this a Keras VGG16 notop "
                             f"file?)")
        group = root["block1_conv1"]
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in group.attrs.get("weight_names", [])]
        return int(group[names[0]].shape[-1]) if names else 0


def load_imagenet_weights(trunk, path):
    """Loads a Keras VGG16 notop .h5 weight file into a trunk of the file's width.

    The file is Keras' legacy HDF5 weight layout: one group per layer (`block1_conv1`, ...),
    each with `weight_names` pointing at kernel and bias datasets. Its first layer expects BGR
    input; the trunk takes RGB, so that kernel's input channels are reversed.
    """
    conv_layers = [l for l in trunk.layers if isinstance(l, layers.Conv2D)]
    with _open(path) as f:
        root = f["model_weights"] if "model_weights" in f else f  # full-model files nest it
        for layer in conv_layers:
            if layer.name not in root:
                raise ValueError(f"{path}: no weights for layer {layer.name} (is this the Keras "
                                 f"VGG16 notop file?)")
            group = root[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in group.attrs.get("weight_names", [])]
            values = [np.asarray(group[n]) for n in names]
            if len(values) != 2:
                raise ValueError(f"{path}: layer {layer.name} has {len(values)} weights, "
                                 f"expected kernel and bias")
            kernel, bias = values
            expected = tuple(layer.kernel.shape)
            if kernel.shape != expected:
                raise ValueError(f"{path}: layer {layer.name} kernel shape {kernel.shape}, the "
                                 f"trunk needs {expected} (--width must be the file's width: "
                                 f"1 for ImageNet's)")
            if layer.name == "block1_conv1":
                # BGR -> RGB, and scaled to what this trunk's input was divided by
                kernel = kernel[:, :, ::-1, :] * input_scale(trunk)
            layer.set_weights([kernel, bias])
    return len(conv_layers)


def save_notop_weights(trunk, path):
    """Writes the trunk's conv layers in the layout of Keras' VGG16 notop .h5 file: the root
    lists `layer_names` (input, convs and pools, as keras.applications.VGG16 orders them), each
    conv group names its `<layer>_W_1:0` kernel and `<layer>_b_1:0` bias, and block1_conv1's
    kernel reads BGR 0-255 input as ImageNet's does. `load_imagenet_weights` and
    keras.applications.VGG16(include_top=False, weights=path) both load it."""
    names = ["input_1"]
    for block, (_, convs) in enumerate(VGG16_BLOCKS, start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode("utf-8") for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = keras.__version__.encode("utf-8")
        for name in names:
            group = f.create_group(name)
            if "conv" not in name:
                group.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            kernel, bias = trunk.get_layer(name).get_weights()
            if name == "block1_conv1":
                # RGB -> BGR, and the input's division folded in: the file reads 0-255 input
                # less the mean, as ImageNet's does
                kernel = kernel[:, :, ::-1, :] / input_scale(trunk)
            weight_names = [f"{name}_W_1:0", f"{name}_b_1:0"]
            group.attrs["weight_names"] = [n.encode("utf-8") for n in weight_names]
            group.create_dataset(weight_names[0], data=kernel)
            group.create_dataset(weight_names[1], data=bias)
