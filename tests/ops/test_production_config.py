"""The production example loads and validates with the project's own loader; environment references."""

from __future__ import annotations

from pathlib import Path

import pytest

from pausegate.api.deployment import deployment_problems
from pausegate.config import (
    FleetConnection,
    ObservabilitySettings,
    Settings,
    VersioningSettings,
    WebhookConnection,
    dump_settings,
    load_settings,
)
from pausegate.config_env import expand_env_references, reference
from pausegate.errors import ConfigError
from pausegate.runbook.loader import load_runbook
from pausegate.temporal.versioning import build_id, deployment_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "production.toml"
ENVIRONMENT = {
    "PAUSEGATE_OIDC_CLIENT_SECRET": "oidc-secret",
    "PAUSEGATE_TELEMETRY_DB_DSN": "postgresql://pausegate_revoker:pw@telemetry-db.internal:5432/telemetry",
    "PAUSEGATE_FLEET_TOKEN": "fleet-token",
    "PAUSEGATE_SLACK_SECURITY_WEBHOOK": "https://hooks.slack.com/services/T0/B0/secret",
    "PAUSEGATE_OTLP_AUTHORIZATION": "Bearer otlp",
    "PAUSEGATE_BUILD_ID": "2026.11.30-abc1234",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return ENVIRONMENT


class TestTheProductionExample:
    def test_it_loads_with_secrets_from_the_environment(self, environment: dict[str, str]) -> None:
        settings = load_settings(EXAMPLE)
        assert settings.temporal.tls and settings.temporal.tls_client_cert is not None
        assert settings.temporal.address.endswith(".tmprl.cloud:7233")
        assert settings.api.oidc is not None and settings.api.oidc.client_secret is not None
        assert settings.api.oidc.client_secret.get_secret_value() == "oidc-secret"
        fleet = settings.fleet("telemetry-fleet")
        assert isinstance(fleet, FleetConnection) and fleet.token is not None
        assert fleet.token.get_secret_value() == "fleet-token"
        assert settings.postgres("telemetry-db").dsn.get_secret_value() == environment["PAUSEGATE_TELEMETRY_DB_DSN"]
        assert isinstance(settings.webhook("slack-security"), WebhookConnection)
        assert settings.observability.otlp_endpoint and settings.observability.worker_metrics_bind
        assert settings.observability.otlp_headers["authorization"].get_secret_value() == "Bearer otlp"
        assert settings.versioning.enabled and settings.versioning.promote == "never"
        config = deployment_config(settings.versioning)
        assert config is not None and config.version.build_id == "2026.11.30-abc1234"

    def test_the_worked_example_runbook_finds_every_connection_it_names(self, environment: dict[str, str]) -> None:
        settings = load_settings(EXAMPLE)
        assert deployment_problems(load_runbook(ROOT / "runbooks" / "employee-telemetry.yaml"), settings) == []

    def test_no_secret_is_written_in_the_file(self) -> None:
        text = EXAMPLE.read_text()
        for value in ENVIRONMENT.values():
            assert value not in text
        for name in ENVIRONMENT:
            assert f'"${{{name}}}"' in text

    def test_an_unset_variable_is_an_error_naming_the_field_and_the_variable(
        self, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("PAUSEGATE_FLEET_TOKEN")
        with pytest.raises(ConfigError) as caught:
            load_settings(EXAMPLE)
        assert "connections.telemetry-fleet.token" in str(caught.value)
        assert "PAUSEGATE_FLEET_TOKEN is not set" in str(caught.value)


class TestEnvironmentReferences:
    @pytest.mark.parametrize("value", ["${A}", "${PAUSEGATE_X_1}", "${_X}"])
    def test_a_whole_value_naming_a_variable_is_a_reference(self, value: str) -> None:
        assert reference(value) == value[2:-1]

    @pytest.mark.parametrize("value", ["${}", "${lower}", "x${A}", "${A}x", "${1A}", "$A", "{A}", "${A-B}",
                                       "${" + "A" * 300 + "}"])
    def test_anything_else_is_kept_as_written(self, value: str) -> None:
        assert reference(value) is None
        assert expand_env_references({"k": value}, where="f", environ={}) == {"k": value}

    def test_references_inside_lists_and_tables_are_replaced(self) -> None:
        raw = {"a": ["${X}", "y"], "b": {"c": "${X}"}}
        assert expand_env_references(raw, where="f", environ={"X": "1"}) == {"a": ["1", "y"], "b": {"c": "1"}}


class TestTheNewSections:
    def test_they_default_to_nothing_exported_and_no_versioning(self) -> None:
        settings = Settings()
        assert settings.observability.otlp_endpoint is None and settings.observability.worker_metrics_bind is None
        assert deployment_config(settings.versioning) is None
        assert build_id(settings.versioning) == __import__("pausegate").__version__

    def test_they_survive_the_stacks_own_config_file(self, tmp_path: Path) -> None:
        settings = Settings(
            observability=ObservabilitySettings(otlp_endpoint="http://c:4318/v1/traces",
                                                otlp_headers={"x-key": "v"}),  # type: ignore[dict-item]
            versioning=VersioningSettings(enabled=True, promote="always", build_id="b1"),
        )
        path = tmp_path / "config.toml"
        path.write_text(dump_settings(settings))
        loaded = load_settings(path)
        assert loaded.versioning == settings.versioning
        assert loaded.observability.otlp_headers["x-key"].get_secret_value() == "v"
        assert loaded.observability.otlp_endpoint == settings.observability.otlp_endpoint

    @pytest.mark.parametrize(("line", "field"), [
        ('worker_metrics_bind = "9464"', "observability.worker_metrics_bind"),
        ('worker_metrics_bind = "0.0.0.0:port"', "observability.worker_metrics_bind"),
        ('otlp_endpoint = "otel-collector:4318"', "observability.otlp_endpoint"),
    ])
    def test_a_bad_exporter_address_says_where(self, tmp_path: Path, line: str, field: str) -> None:
        path = tmp_path / "config.toml"
        path.write_text(f"[observability]\n{line}\n")
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_settings(path)

    @pytest.mark.parametrize("bind", ["0.0.0.0:9464", "127.0.0.1:0", "[::1]:9464", "worker-0.pausegate:9464"])
    def test_a_host_and_port_is_a_bind_address(self, bind: str) -> None:
        assert ObservabilitySettings(worker_metrics_bind=bind).worker_metrics_bind == bind

    def test_a_bad_promote_policy_says_where(self, tmp_path: Path) -> None:
        path = tmp_path / "config.toml"
        path.write_text('[versioning]\nenabled = true\npromote = "sometimes"\n')
        with pytest.raises(ConfigError, match=r"versioning\.promote"):
            load_settings(path)
