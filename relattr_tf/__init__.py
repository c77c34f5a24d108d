"""relattr_tf: relative attributes on Keras 3 / TensorFlow."""
import os

# TensorFlow turns its oneDNN CPU kernels on by default only on some CPUs (not on AVX2-only
# ones), and without them CPU convolutions train about 2x slower. Set before TensorFlow is
# imported; TF_ENABLE_ONEDNN_OPTS=0 in the environment still turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
