"""The generator family's task: the plain Attribute2Image (--model=cvae) or the layered one
(--model=layered_cvae), chosen by the model's name."""
from relattr_tf.training import task
from relattr_tf.training.cvae import CvaeTask
from relattr_tf.training.layered_cvae import LayeredCvaeTask


def generator_task(config, **kwargs):
    if config.model == "layered_cvae":
        return LayeredCvaeTask(config, **kwargs)
    return CvaeTask(config, **kwargs)


task.register_task("generator", generator_task)
