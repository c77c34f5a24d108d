"""Measuring what runs leave: pair accuracy and box coverage (pairs), the generator (generator),
ATTIC's generated pairs (generated_pairs), a trunk's linear probe (linear_probe); and reporting
it: tables, mean ± std, intervals and provenance (report), result ledgers (ledger), a study's
table and plot from its ledger (studies), the machine a figure was measured on (machine)."""
