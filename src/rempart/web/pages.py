"""The authorization server's HTML pages: login, consent, error.

Plain forms, no script. Every value is escaped; the pages forbid framing and allow
forms to post only to this server (and, for the consent page, to follow the redirect
to the client's registered URI).
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

PLAIN_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|http://\[::1\](:[0-9]{1,5})?")
PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rempart — {title}</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""
SCOPE_TEXT = {
    "openid": "Know who you are",
    "fhirUser": "Know which FHIR record is yours",
    "launch/patient": "Know which patient is in context",
    "offline_access": "Keep access when you are away (offline)",
    "online_access": "Keep access while you are using the app",
}


def _csp(extra_form_action: str = "") -> str:
    actions = f"'self' {extra_form_action}".strip()
    return f"default-src 'none'; form-action {actions}; frame-ancestors 'none'; base-uri 'none'"


def _page(title: str, body: str, status: int = 200, form_to: str = "") -> HTMLResponse:
    html = PAGE.format(title=escape(title), body=body)
    headers = {"content-security-policy": _csp(form_to), "cache-control": "no-store"}
    return HTMLResponse(html, status_code=status, headers=headers)


def login_page(tx: str, client_id: str, error: str | None = None) -> HTMLResponse:
    alert = f'<p role="alert">{escape(error)}</p>' if error else ""
    body = f"""<p>L'application <strong>{escape(client_id)}</strong> demande l'accès.</p>
{alert}<form method="post" action="/auth/login">
<input type="hidden" name="tx" value="{escape(tx)}">
<p><label>Identifiant <input name="username" autocomplete="username" required></label></p>
<p><label>Mot de passe <input name="password" type="password"
 autocomplete="current-password" required></label></p>
<p><label>Code à usage unique (TOTP) <input name="totp" inputmode="numeric"
 autocomplete="one-time-code" pattern="[0-9]{{6}}" required></label></p>
<p><button type="submit" name="login" value="1">Se connecter</button></p>
</form>"""
    return _page("Connexion", body, 401 if error else 200)


def consent_page(tx: str, client_id: str, scopes: list[str], redirect_uri: str) -> HTMLResponse:
    items = "".join(
        f"<li><code>{escape(s)}</code> {escape(SCOPE_TEXT.get(s, ''))}</li>" for s in scopes
    )
    body = f"""<p>L'application <strong>{escape(client_id)}</strong> demande :</p>
<ul>{items}</ul>
<form method="post" action="/auth/consent">
<input type="hidden" name="tx" value="{escape(tx)}">
<button type="submit" name="approve" value="1">Autoriser</button>
<button type="submit" name="deny" value="1">Refuser</button>
</form>"""
    return _page("Autorisation", body, form_to=_origin(redirect_uri))


def error_page(message: str, status: int = 400) -> HTMLResponse:
    return _page("Erreur", f'<p role="alert">{escape(message)}</p>', status)


def _origin(uri: str) -> str:
    """The redirect URI's origin for the CSP, if it is a plain one (no CSP injection)."""
    parts = urlsplit(uri)
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin if PLAIN_ORIGIN.fullmatch(origin) else ""
