"""Who may read what (S3 policies, serving databases) and secrets checked before start."""
