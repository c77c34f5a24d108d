"""What a run leaves for others, saved and loaded here only: its config (run_config), the
exported pair model and warm starts (pair_model), the frozen generator (generator), ATTIC's
control net and slots (control) and the active loop's round folders (rounds)."""
