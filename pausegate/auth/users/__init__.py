"""Local users and their signed change log, in one of two stores behind one interface.

``store``: the interface (``UserStore``) and the rules both stores keep (the last admin remains, how a
change made outside the API is described, the lines of the log); ``log``: the change log's lines on the
chained log of ``pausegate.records``; ``file``: the users file and its log beside it; ``postgres``: the
API's database, shared by every replica (user rows signed); ``views``: the shapes of ``/v1/users``.
"""
