"""Distribution strategies, and logical CPU devices so multi-replica code runs without GPUs."""
import tensorflow as tf

STRATEGIES = ("default", "mirrored")


def configure_cpu_devices(count):
    """Splits the first CPU into `count` logical devices; must run before TensorFlow is used."""
    if count <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as e:
        raise RuntimeError(f"--cpu_devices={count} must be set before TensorFlow starts "
                           f"({e})") from None


def replica_devices():
    """Every GPU, else every logical CPU device: what a mirrored strategy replicates over."""
    return ([d.name for d in tf.config.list_logical_devices("GPU")]
            or [d.name for d in tf.config.list_logical_devices("CPU")])


def make_strategy(name):
    """'default': one device. 'mirrored': one replica per device of replica_devices()."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(replica_devices())
    raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
