"""The exit statuses of the `myoguide` command, shared by its modules."""

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
EXIT_SKIPPED = 3  # `audit`: rows written, but some input lines or files were skipped
EXIT_TAMPERED = 4  # `record verify`, `restore`: the record does not verify
