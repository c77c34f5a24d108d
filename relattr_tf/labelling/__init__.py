"""Having generated pairs labelled: the package for Label Studio (or a CSV sheet), reading the
answers back, and the embedded benchmark's simulated crowd as offline annotators."""
