"""The exit codes of every `leaderd` command, in one table (docs/OPERATIONS.md §8).

Names, not magic numbers, like supervisor's LSBInitExitStatuses. The values
are documented and relied on: systemd/leaderd.service stops restarting on
RestartPreventExitStatus=2, and scripts run `leaderd is-leader && job`.
"""

EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and failed (`run`: could not start)
EXIT_USAGE = 2  # bad arguments or input, a bad config included: nothing was done (argparse uses 2 too)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

# is-leader: 0 leads, 1 does not, 2 the agent cannot be reached or errs.
EXIT_NOT_LEADER = 1
EXIT_UNREACHABLE = 2
