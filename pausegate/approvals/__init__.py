"""Approvals signed by the approver, verified by pure code anyone can run offline.

``statement``: the in-toto Statement of one approval and what it must say. ``dsse``: the envelope and
its pre-authentication encoding (what every signature covers). ``sshsig``: SSH signatures
(``ssh-keygen -Y sign``). ``passkey``: WebAuthn assertions whose challenge is the hashed encoding.
``verify``: one envelope against a pinned key ring and what the pause expects. ``enrollment``: which
enrolled keys count. ``offline``: a pause's approvals checked from its evidence and the enrollment log.
"""
