"""Who may see what: roles, principals, masking, audit, authentication (docs/security.md)."""
