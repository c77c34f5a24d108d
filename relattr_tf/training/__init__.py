"""Training: the task interface, the driver that runs any task (run.py), and one task per model
family. Importing the package registers every family's task with `task.make_task`."""
from relattr_tf.training import attic, generators, pretrain, ranker  # noqa: F401  register tasks
