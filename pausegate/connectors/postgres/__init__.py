"""PostgreSQL dataset access: catalog reading, revoke planning and the connector."""
