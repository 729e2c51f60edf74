"""The database the API replicas share (``api.state = "postgres"``): its connection pools and its schema.

``database``: one replica's pools, the migrations applied at start; ``schema``: the tables, as numbered
migrations, and the grants of the API's role. What lives in it is the API's and auth's: users
(``pausegate.auth.users.postgres``), the signed logs (``pausegate.records.postgres``), rate limits
(``pausegate.api.rate_limits.postgres``), update slots (``pausegate.api.update_slots``). This package
imports none of them: only the configuration, the error tree and its libraries.
"""
