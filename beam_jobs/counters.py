"""What the relattr Beam jobs count, on any runner.

The counts that decide a job's outcome (images read and rejected, pairs dropped, ...) are
PCollections: `CountElements(name)` turns a PCollection into (name, n), `SumCounts` adds such
counts up, and records.WriteMetadata stores them in metadata.json (`job_counts`), where the
job's summary line and its --max_rejected_fraction check read them. Every runner computes
them, the DaskRunner too, which collects no metrics.

Beam metrics are kept as a bonus where the runner has them: `counter(name)` makes one in the
project's namespace and `counters_of(result)` reads them back ({} when the runner has none).
"""
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "relattr"


def counter(name):
    return Metrics.counter(NAMESPACE, name)


def counters_of(result):
    """{name: committed value} of the relattr metrics, summed over the steps that share a name
    (absent counters read as 0: use .get(name, 0)); {} on a runner without metrics."""
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except NotImplementedError:
        return {}
    counts = {}
    for c in query["counters"]:
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + c.committed
    return counts


class CountElements(beam.PTransform):
    """PCollection -> one (name, n) with n the sum of weight(element) (default 1 each), also
    (name, 0) when the input is empty."""

    def __init__(self, name, weight=None):
        super().__init__()
        self.name, self.weight = name, weight

    def expand(self, pcoll):
        name, weight = self.name, self.weight
        ones = pcoll | "Weigh" >> beam.Map(lambda x: (name, int(weight(x)) if weight else 1))
        zero = pcoll.pipeline | "Zero" >> beam.Create([(name, 0)])
        return (ones, zero) | "Both" >> beam.Flatten() | "Sum" >> beam.CombinePerKey(sum)


class SumCounts(beam.PTransform):
    """Several PCollections of (name, n) -> (name, total) per name."""

    def expand(self, counts):
        return tuple(counts) | "All" >> beam.Flatten() | "Sum" >> beam.CombinePerKey(sum)
