"""Runs of the refresh jobs: the jobs as objects, the range planner, range runs, progress."""
