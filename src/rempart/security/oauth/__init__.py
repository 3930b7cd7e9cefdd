"""OAuth 2.0 / SMART App Launch 2.2 authorization server pieces (RFC 6749, RFC 7523)."""
