"""The HTTP API people use to act on pauses (see docs/api.md).

``pausegate.api.app.create_app`` builds it alone; ``pausegate.app`` builds it with the web console
mounted and serves it.
"""
