"""Studies made of many runs: the ablation, numbered splits, ATTIC's active loop and its
experiment with the baselines, and the benchmark."""
