"""Small experiments that back claims in docs/ with real runs of the trainer."""
