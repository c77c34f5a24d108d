"""The relattr Beam counters: `counter(name)` makes one in the project's namespace,
`counters_of(result)` reads their committed values back after a run."""
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "relattr"


def counter(name):
    return Metrics.counter(NAMESPACE, name)


def counters_of(result):
    """{name: committed value} of the relattr counters, summed over the steps that share a
    name (absent counters read as 0: use .get(name, 0))."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counts = {}
    for c in query["counters"]:
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + c.committed
    return counts

