"""Each actor's rate limit: a token bucket per actor, so a request over the limit is answered 429 with
``Retry-After`` and counted, not logged one by one.

``limiter``: what every rate limiter offers (``RateLimiter``) and the refusal they share (``Throttle``);
``memory``: buckets in this process; ``postgres``: buckets in the API's database, shared by every replica.
``pausegate.api.backends`` chooses one.
"""
