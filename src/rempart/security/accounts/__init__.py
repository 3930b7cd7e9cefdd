"""User accounts of the SMART authorization server: the checks behind its login form.

``passwords`` stores passwords as argon2id hashes (RFC 9106; OWASP Password Storage
Cheat Sheet) and refuses weak ones (NIST SP 800-63B §5.1.1.2); ``totp`` checks the
second factor (RFC 6238); ``login`` decides a login against the ``AuthStore`` port,
with a lock-out that backs off exponentially (NIST SP 800-63B §5.2.2).
"""
