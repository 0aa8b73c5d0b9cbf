"""The operator's edges, pure parts: settings, API paths and errors, credentials, leases."""

from __future__ import annotations

from datetime import UTC, datetime

import kopf
import pytest

from surge_operator import __version__
from surge_operator.api import MessagingClusterStatus, SecretKeyRef, parse_spec
from surge_operator.errors import (
    CredentialsSecretMissingError,
    ImmutableStreamFieldError,
    KubeApiError,
    KubeConflictError,
    KubeNotFoundError,
    KubeRejectedError,
    NatsUnavailableError,
)
from surge_operator.handlers.lifecycle import configure_kopf, to_kopf
from surge_operator.handlers.reconcile import figures_from_deployment, initial_replicas
from surge_operator.jetstream import NatsAuth, auth_from_secret, redact_url
from surge_operator.kube import _error, object_path
from surge_operator.settings import OperatorConfig

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_settings_read_the_chart_env_names() -> None:
    config = OperatorConfig.from_env(
        {
            "SURGE_NAMESPACES": "a, b",
            "SURGE_LOG_FORMAT": "json",
            "SURGE_PEERING": "surge",
            "SURGE_METRICS_PORT": "9191",
            "SURGE_POD_LABELS": "example.com/cost-center=true",
            "SURGE_IMAGE": "surge:1.2.3-rc1",
            "POD_NAME": "op-0",
            "POD_NAMESPACE": "surge-system",
        }
    )
    assert config.namespaces == ("a", "b")
    assert config.logs.format == "json"
    assert config.leader.lease_name == "surge"
    assert config.leader.lease_namespace == "surge-system"
    assert config.leader.identity == "op-0"
    assert config.server.metrics_port == 9191
    assert dict(config.apply.extra_pod_labels) == {"example.com/cost-center": "true"}
    assert config.apply.data_plane_image == "surge:1.2.3-rc1"


def test_settings_defaults() -> None:
    config = OperatorConfig.from_env({})
    assert config.namespaces == ()
    assert config.apply.field_manager == "surge-operator"
    assert config.leader.enabled is True
    assert config.status.interval_seconds == 5.0
    assert config.apply.data_plane_image == f"surge:{__version__}"


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="SURGE_LOG_FORMAT"):
        OperatorConfig.from_env({"SURGE_LOG_FORMAT": "xml"})


def test_object_paths() -> None:
    assert object_path("v1", "ConfigMap", "ns", "c") == "/api/v1/namespaces/ns/configmaps/c"
    assert object_path("apps/v1", "Deployment", "ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert (
        object_path("surge.dev/v1alpha1", "MessagingCluster", "ns", "x")
        == "/apis/surge.dev/v1alpha1/namespaces/ns/messagingclusters/x"
    )
    with pytest.raises(KubeApiError):
        object_path("v1", "Unknown", "ns")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, KubeNotFoundError),
        (409, KubeConflictError),
        (422, KubeRejectedError),
        (400, KubeRejectedError),
        (500, KubeApiError),
    ],
)
def test_api_errors_map_to_domain_errors(status: int, kind: type[KubeApiError]) -> None:
    error = _error(status, "PATCH", "/x", '{"message": "nope"}')
    assert type(error) is kind
    assert "nope" in error.message


def test_a_malformed_field_refused_by_apply_is_permanent() -> None:
    text = '{"message": "failed to convert new object: unable to convert unstructured object"}'
    assert type(_error(500, "PATCH", "/x", text)) is KubeRejectedError


def test_credentials_from_secrets() -> None:
    creds = SecretKeyRef(name="s")
    assert auth_from_secret(creds, {"creds": b"JWT"}).creds == "JWT"
    token = SecretKeyRef(name="s", key="token")
    assert auth_from_secret(token, {"token": b"t"}).token == "t"
    userpass = SecretKeyRef(name="s", key="password")
    auth = auth_from_secret(userpass, {"user": b"u", "password": b"p"})
    assert (auth.user, auth.password) == ("u", "p")
    with pytest.raises(CredentialsSecretMissingError, match="does not exist"):
        auth_from_secret(creds, None)
    with pytest.raises(CredentialsSecretMissingError, match="no key user"):
        auth_from_secret(userpass, {"password": b"p"})


def test_secrets_never_show_in_repr_or_messages() -> None:
    assert "s3cret" not in repr(NatsAuth(password="s3cret", token="s3cret", creds="s3cret"))
    assert redact_url("nats://a:s3cret@h:4222,nats://h2:4222") == "nats://***@h:4222,nats://h2:4222"


def test_kopf_errors_permanent_vs_temporary() -> None:
    assert isinstance(to_kopf(ImmutableStreamFieldError("storage"), 0), kopf.PermanentError)
    temporary = to_kopf(NatsUnavailableError("down"), 10, cap=30)
    assert isinstance(temporary, kopf.TemporaryError)
    assert temporary.delay == 30


def test_kopf_progress_lives_in_annotations() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.persistence.finalizer == "surge.dev/finalizer"
    assert settings.posting.enabled is False


def test_deployment_figures_and_replica_ownership() -> None:
    figures = figures_from_deployment(
        {
            "metadata": {
                "generation": 3,
                "managedFields": [
                    {
                        "manager": "surge-operator",
                        "operation": "Apply",
                        "fieldsV1": {"f:spec": {"f:replicas": {}}},
                    }
                ],
            },
            "spec": {"replicas": 4},
            "status": {
                "replicas": 4,
                "readyReplicas": 2,
                "updatedReplicas": 4,
                "observedGeneration": 3,
            },
        },
        "surge-operator",
    )
    assert (figures.spec_replicas, figures.ready, figures.structural_owns_replicas) == (4, 2, True)
    assert figures.rolled_out


def test_initial_replicas_resume_the_last_decision_within_bounds() -> None:
    spec = parse_spec(
        {
            "regions": [{"name": "e", "role": "primary", "nats": {"url": "nats://n:4222"}}],
            "autoscaling": {"minReplicas": 2, "maxReplicas": 6},
        }
    )
    assert initial_replicas(spec, MessagingClusterStatus()) == 2
    assert initial_replicas(spec, MessagingClusterStatus(desired_replicas=5)) == 5
    assert initial_replicas(spec, MessagingClusterStatus(desired_replicas=50)) == 6
