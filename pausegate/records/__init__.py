"""Signed, hash-chained, append-only records: one rule, two media.

``chain``: the rule, pure (genesis, the digest of a line, the signed head, where an append resumes and
how a change made outside the API becomes a break, the problems a check finds). ``log``: a log of
entries over any medium that keeps the rule (``ChainLog``), and the interface a medium offers
(``ChainMedium``). ``files``: the file medium (JSON lines and a head file beside them). ``postgres``:
the PostgreSQL medium (rows of ``api_log_lines`` and ``api_log_heads``). The refusal log
(``pausegate.api.refusal_log``) and the users' change log (``pausegate.auth.users.log``) are its users.
"""
