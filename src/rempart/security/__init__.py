"""Security: principal, OAuth/SMART authorization server, scopes, rate limits, audit.

Empty until the security gateway lands (issues 4 to 6); the import rules in
pyproject.toml already hold it apart from the REST handlers and the web layer.
"""
