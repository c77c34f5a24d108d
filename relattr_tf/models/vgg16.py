"""The VGG16 convolutional trunk (13 conv layers, no fully connected layers).

Width 1 is exactly VGG16's trunk (14,714,688 parameters) and loads the standard Keras
"notop" ImageNet weight file (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5) from a local
path. Smaller widths scale every conv layer's channels, for cheap CPU variants.
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


def channels(filters, width):
    return max(4, int(round(filters * width)))


def build_vgg16_trunk(image_size, width=1.0, name="trunk"):
    """keras.Model: (B, S, S, 3) RGB in [0, 1] -> (B, S/32, S/32, 512 * width) features."""
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(255.0, name="to_pixels")(image)
    x = layers.Normalization(mean=IMAGENET_MEAN_RGB, variance=(1.0, 1.0, 1.0),
                             name="imagenet_mean")(x)
    for block, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        x = apply_vgg_block(x, channels(filters, width), convs, block)
    return keras.Model(image, x, name=name)


def load_imagenet_weights(trunk, path):
    """Loads the Keras VGG16 notop .h5 weight file into a width-1 trunk.

    The file is Keras' legacy HDF5 weight layout: one group per layer (`block1_conv1`, ...),
    each with `weight_names` pointing at kernel and bias datasets. Its first layer expects BGR
    input; the trunk takes RGB, so that kernel's input channels are reversed.
    """
    conv_layers = [l for l in trunk.layers if isinstance(l, layers.Conv2D)]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: cannot read the VGG16 weight file ({e})") from None
    with f:
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
                                 f"trunk needs {expected} (ImageNet weights need --width=1)")
            if layer.name == "block1_conv1":
                kernel = kernel[:, :, ::-1, :]  # BGR -> RGB
            layer.set_weights([kernel, bias])
    return len(conv_layers)
