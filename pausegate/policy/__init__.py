"""Pure decisions the workflow makes: digests, review rules, quorum. No I/O, no clocks."""
