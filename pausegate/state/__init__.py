"""The API's state shared by every replica, in the deployment's PostgreSQL (``api.state = "postgres"``).

``database``: pools and start-up migrations (``schema``); ``chain``: the signed, hash-chained logs;
``users`` and ``refusals``: the users' directory and the refusal log over them; ``rate_limit``: each
actor's token bucket; ``slots``: each pause's update slots, leased; ``embedded``: the embedded stack's
own state database.
"""
