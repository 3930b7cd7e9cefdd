from rempart.config import load_settings


def test_hosts_and_base_url_from_the_environment() -> None:
    env = {
        "REMPART_ALLOWED_HOSTS": "fhir.chu.example, localhost",
        "REMPART_BASE_URL": "https://fhir.chu.example/fhir",
    }
    settings = load_settings(env)
    assert settings.server.allowed_hosts == ("fhir.chu.example", "localhost")
    assert settings.server.base_url == "https://fhir.chu.example/fhir"
    assert load_settings({}).server.allowed_hosts == ("127.0.0.1", "localhost", "::1")
